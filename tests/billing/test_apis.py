"""The packs and orders API, with and without Stripe set up."""

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from accounts.models import User
from billing import services
from billing.exceptions import (
    CardPaymentsUnavailable,
    OrderNotFound,
    OrderNotPayable,
    PackNotFound,
    PaymentDeclined,
)
from billing.models import Order, OrderStatus, PointPack
from tests.billing.conftest import (
    DECLINED_CARD,
    PACK_BONUS,
    PACK_POINTS,
    PACK_PRICE,
    LocalStripe,
    balance_of,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(buyer: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(buyer)
    return client


def test_packs_on_sale_in_order_with_prices_for_the_locale(
    api: APIClient, pack: PointPack
) -> None:
    PointPack.objects.create(name="First", points=10, price=1_000, position=1)
    PointPack.objects.create(name="Off", points=10, price=1_000, active=False)

    body = api.get("/api/points/packs").json()

    assert body["success"] is True
    assert body["card_payments"] is False
    names = [item["name"] for item in body["packs"]]
    assert "Off" not in names
    assert names.index("First") < names.index("Test pack")
    ours = next(item for item in body["packs"] if item["name"] == "Test pack")
    assert ours == {
        "id": pack.pk,
        "name": "Test pack",
        "points": PACK_POINTS,
        "bonus_points": PACK_BONUS,
        "total_points": PACK_POINTS + PACK_BONUS,
        "price": PACK_PRICE,
        "currency": "krw",
        "price_display": "₩5,000",
    }


def test_packs_query_count(
    api: APIClient, pack: PointPack, django_assert_num_queries
) -> None:
    with django_assert_num_queries(1):
        assert api.get("/api/points/packs").status_code == 200


def test_packs_with_an_api_key(buyer: User, pack: PointPack) -> None:
    _key, secret = create_api_key(user=buyer, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert client.get("/api/points/packs").status_code == 200
    assert APIClient().get("/api/points/packs").status_code in (401, 403)


def test_ordering_without_stripe_set_up_is_refused(
    api: APIClient, pack: PointPack
) -> None:
    response = api.post("/api/points/orders", {"pack": pack.pk}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == CardPaymentsUnavailable.code
    assert Order.objects.count() == 0


def test_ordering_a_pack_not_on_sale_is_refused(
    api: APIClient, stripe_on: LocalStripe, pack: PointPack
) -> None:
    pack.active = False
    pack.save()

    response = api.post("/api/points/orders", {"pack": pack.pk}, format="json")

    assert response.status_code == 404
    assert response.json()["code"] == PackNotFound.code


def test_order_gets_a_payment_intent_and_its_client_secret(
    api: APIClient, stripe_on: LocalStripe, pack: PointPack, buyer: User
) -> None:
    response = api.post("/api/points/orders", {"pack": pack.pk}, format="json")

    body = response.json()
    order = Order.objects.get()
    intent = stripe_on.get(f"payment_intents/{order.provider_id}")
    assert response.status_code == 201
    assert body["client_secret"] == intent["client_secret"]
    assert body["publishable_key"] == stripe_on.publishable_key
    assert body["order"]["id"] == order.pk
    assert (body["order"]["status"], body["order"]["amount"]) == ("pending", 5_000)
    assert (order.user, order.points, order.bonus_points) == (
        buyer,
        PACK_POINTS,
        PACK_BONUS,
    )


def test_order_keeps_the_figures_it_was_sold_at(
    stripe_on: LocalStripe, pack: PointPack, buyer: User, make_order: Callable
) -> None:
    order = make_order(buyer)

    pack.price, pack.points = 9_999, 1
    pack.save()

    order.refresh_from_db()
    assert (order.amount, order.points, order.pack_name) == (
        PACK_PRICE,
        PACK_POINTS,
        "Test pack",
    )


def test_order_list_is_the_users_own_newest_first_in_pages(
    api: APIClient,
    stripe_on: LocalStripe,
    buyer: User,
    make_user: Callable[..., User],
    make_order: Callable,
    django_assert_num_queries,
) -> None:
    mine = [make_order(buyer) for _ in range(3)]
    make_order(make_user())

    with django_assert_num_queries(1):
        first = api.get("/api/points/orders?limit=2").json()
    second = api.get(f"/api/points/orders?limit=2&before={first['next_before']}")

    assert [o["id"] for o in first["orders"]] == [mine[2].pk, mine[1].pk]
    assert [o["id"] for o in second.json()["orders"]] == [mine[0].pk]
    assert second.json()["next_before"] is None


def test_confirming_on_the_server_pays_and_credits_the_order(
    api: APIClient, stripe_on: LocalStripe, buyer: User, make_order: Callable
) -> None:
    order = make_order(buyer)

    response = api.post(
        f"/api/points/orders/{order.pk}/confirm",
        {"payment_method": stripe_on.card()},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["order"]["status"] == OrderStatus.PAID
    assert balance_of(buyer) == PACK_POINTS + PACK_BONUS


def test_confirming_with_a_declined_card_fails_the_order(
    api: APIClient, stripe_on: LocalStripe, buyer: User, make_order: Callable
) -> None:
    order = make_order(buyer)

    response = api.post(
        f"/api/points/orders/{order.pk}/confirm",
        {"payment_method": stripe_on.card(DECLINED_CARD)},
        format="json",
    )

    order.refresh_from_db()
    assert response.status_code == 402
    assert response.json()["code"] == PaymentDeclined.code
    assert order.status == OrderStatus.FAILED
    assert balance_of(buyer) == 0


def test_confirming_someone_elses_order_is_not_found(
    api: APIClient,
    stripe_on: LocalStripe,
    make_user: Callable[..., User],
    make_order: Callable,
) -> None:
    order = make_order(make_user())

    response = api.post(
        f"/api/points/orders/{order.pk}/confirm",
        {"payment_method": stripe_on.card()},
        format="json",
    )

    assert (response.status_code, response.json()["code"]) == (
        404,
        OrderNotFound.code,
    )


def test_confirming_a_paid_order_again_is_refused(
    api: APIClient, stripe_on: LocalStripe, buyer: User, make_order: Callable
) -> None:
    order = make_order(buyer)
    services.confirm_order(
        user=buyer, order_id=order.pk, payment_method=stripe_on.card()
    )

    response = api.post(
        f"/api/points/orders/{order.pk}/confirm",
        {"payment_method": stripe_on.card()},
        format="json",
    )

    assert (response.status_code, response.json()["code"]) == (
        409,
        OrderNotPayable.code,
    )
    assert balance_of(buyer) == PACK_POINTS + PACK_BONUS


def test_stripe_unreachable_when_ordering_fails_the_order(
    api: APIClient, stripe_on: LocalStripe, pack: PointPack, settings
) -> None:
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"

    response = api.post("/api/points/orders", {"pack": pack.pk}, format="json")

    assert response.status_code == 502
    assert Order.objects.get().status == OrderStatus.FAILED


def test_api_endpoints_are_in_the_schema(api: APIClient) -> None:
    paths = api.get("/api/schema/?format=json").json()["paths"]

    assert {
        "/api/points/packs",
        "/api/points/orders",
        "/api/points/orders/{order_id}/confirm",
        "/api/points/redeem",
        "/webhooks/stripe/",
    } <= set(paths)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/points/orders", {"pack": "1"}),
        ("/api/points/orders", {"pack": True}),
        ("/api/points/redeem", {"code": 1234}),
        ("/api/points/redeem", {}),
    ],
)
def test_input_of_the_wrong_type_is_refused(
    api: APIClient, stripe_on: LocalStripe, pack: PointPack, path: str, body: dict
) -> None:
    response = api.post(path, body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert Order.objects.count() == 0
