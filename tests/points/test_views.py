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
