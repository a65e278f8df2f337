"""Staff in the admin: packs, codes (CSV, disable), refunds and stuck orders."""

import csv
import io
from collections.abc import Callable

import pytest
from django.test import Client

from accounts.models import User
from billing import codes, services
from billing.models import OrderStatus, PointPack, RedemptionCode
from points import services as ledger
from points.audit import audit_accounts
from points.models import Account
from tests.billing.conftest import PACK_BONUS, PACK_POINTS, LocalStripe, balance_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client, staff_user: User) -> Client:
    client.force_login(staff_user)
    return client


def test_generated_codes_download_once_as_csv_and_redeem(
    staff: Client, user: User
) -> None:
    response = staff.post(
        "/admin/billing/redemptioncode/generate/",
        {"points": 250, "count": 4, "uses": 2, "expires": "2099-01-31", "note": "QA"},
    )

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert rows[0] == ["code", "points", "uses", "valid_through", "note"]
    assert [row[1:] for row in rows[1:]] == [["250", "2", "2099-01-31", "QA"]] * 4
    assert RedemptionCode.objects.filter(note="QA", max_uses=2).count() == 4
    assert codes.redeem_code(user=user, code=rows[1][0], address="127.0.0.1")


def test_generate_form_shows_and_refuses_bad_input(staff: Client) -> None:
    assert staff.get("/admin/billing/redemptioncode/generate/").status_code == 200

    response = staff.post(
        "/admin/billing/redemptioncode/generate/", {"points": 0, "count": 1, "uses": 1}
    )

    assert response.status_code == 200
    assert RedemptionCode.objects.count() == 0


def test_disable_action_disables_the_selected_codes(staff: Client, user: User) -> None:
    [kept, disabled] = codes.create_codes(points=10, count=2)
    target = RedemptionCode.objects.get(last_characters=disabled[-4:])

    staff.post(
        "/admin/billing/redemptioncode/",
        {"action": "disable", "_selected_action": [target.pk]},
    )

    target.refresh_from_db()
    assert target.disabled_at is not None
    assert RedemptionCode.objects.filter(disabled_at__isnull=True).count() == 1
    assert codes.redeem_code(user=user, code=kept, address="127.0.0.1")


def test_code_list_offers_generating(staff: Client) -> None:
    page = staff.get("/admin/billing/redemptioncode/")

    assert "/admin/billing/redemptioncode/generate/" in page.content.decode()


def test_refund_from_the_admin_takes_the_points_back(
    staff: Client,
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
) -> None:
    order = make_order(buyer)
    charge_card(order)
    services.sync_payment(payment_intent_id=order.provider_id)
    assert staff.get(f"/admin/billing/order/{order.pk}/refund/").status_code == 200

    response = staff.post(f"/admin/billing/order/{order.pk}/refund/", {"amount": 2_500})

    order.refresh_from_db()
    intent = stripe_on.get(f"payment_intents/{order.provider_id}")
    assert response.status_code == 302
    assert intent["latest_charge"]["amount_refunded"] == 2_500
    assert order.status == OrderStatus.PARTIALLY_REFUNDED
    assert balance_of(buyer) == (PACK_POINTS + PACK_BONUS) // 2
    assert audit_accounts() == []


def test_refund_of_more_than_remains_is_refused(
    staff: Client,
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
) -> None:
    order = make_order(buyer)
    charge_card(order)
    services.sync_payment(payment_intent_id=order.provider_id)

    response = staff.post(f"/admin/billing/order/{order.pk}/refund/", {"amount": 9_999})

    order.refresh_from_db()
    assert response.status_code == 200
    assert (order.status, order.refunded_amount) == (OrderStatus.PAID, 0)


def test_check_with_stripe_action_credits_a_stuck_order(
    staff: Client,
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
) -> None:
    # given a payment that neither the webhook nor the return page recorded
    order = make_order(buyer)
    charge_card(order)

    staff.post(
        "/admin/billing/order/",
        {"action": "check_with_stripe", "_selected_action": [order.pk]},
    )

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert balance_of(buyer) == PACK_POINTS + PACK_BONUS


def test_order_page_shows_its_ledger_rows_and_refund_button(
    staff: Client,
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
) -> None:
    order = make_order(buyer)
    charge_card(order)
    services.sync_payment(payment_intent_id=order.provider_id)

    text = staff.get(f"/admin/billing/order/{order.pk}/change/").content.decode()

    assert f"+{PACK_POINTS:,}" in text and f"+{PACK_BONUS:,}" in text
    assert f"/admin/billing/order/{order.pk}/refund/" in text


def test_accounts_owing_points_are_listed(
    staff: Client,
    stripe_on: LocalStripe,
    buyer: User,
    make_order: Callable,
    charge_card: Callable,
) -> None:
    order = make_order(buyer)
    charge_card(order)
    services.sync_payment(payment_intent_id=order.provider_id)
    ledger.debit(account=Account.objects.get(user=buyer), amount=PACK_POINTS)
    services.refund_order(order_id=order.pk)

    text = staff.get("/admin/billing/owedaccount/").content.decode()

    assert buyer.email in text
    assert Account.objects.get(user=buyer).owed == PACK_POINTS


def test_packs_are_edited_in_the_admin(staff: Client, pack: PointPack) -> None:
    page = staff.get("/admin/billing/pointpack/")

    assert page.status_code == 200
    assert "₩5,000" in page.content.decode()
