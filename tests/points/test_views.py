from django.test import Client
from django.urls import reverse

from points import services
from points.models import Account


def test_points_page_shows_balance_and_newest_history_first(
    client: Client, account: Account
) -> None:
    services.grant(account=account, amount=1234)
    client.force_login(account.user)

    response = client.get(reverse("points:overview"))

    rows = list(response.context["page"].object_list)
    assert response.status_code == 200
    assert [row.amount for row in rows] == [1234, 100_000]
    assert "101,234" in response.content.decode()


def test_points_page_paginates_history(client: Client, account: Account) -> None:
    for _ in range(25):
        services.grant(account=account, amount=1)
    client.force_login(account.user)

    second = client.get(reverse("points:overview"), {"page": 2})

    assert len(second.context["page"].object_list) == 6
    assert second.context["page"].object_list[5].amount == 100_000


def test_points_page_query_count_is_fixed(
    client: Client, account: Account, django_assert_max_num_queries
) -> None:
    for _ in range(30):
        services.grant(account=account, amount=1)
    client.force_login(account.user)
    with django_assert_max_num_queries(8):
        client.get(reverse("points:overview"))


def test_points_page_shows_tier_and_both_prices(
    client: Client, account: Account, staff_user
) -> None:
    from decimal import Decimal

    from points.models import Tier
    from points.pricing import Rates
    from points.services import TokenCount

    gold = Tier.objects.create(code="gold", name="Gold", discount_bps=1_050)
    services.set_tier(account=account, tier=gold, reason="test", by_user=staff_user)
    reservation = services.reserve(
        account=account,
        model="gpt-4o",
        rates=Rates(Decimal(2), Decimal(2)),
        prompt_tokens=26,
        completion_tokens=16,
        minimum_completion_tokens=4,
    )
    services.settle(reservation=reservation, counted=TokenCount(26, 16))
    client.force_login(account.user)

    page = client.get(reverse("points:overview")).content.decode()

    assert 'id="points-tier">Gold (' in page
    assert "10.5%" in page
    assert ">84</s> -76<" in page
