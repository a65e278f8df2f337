"""The operators' dashboard: staff only, every figure equal to the ledger it sums."""

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from accounts.models import User
from billing import codes
from billing import services as billing
from billing.models import Order, PointPack, Redemption
from points import services
from points.admin_dashboard import Dashboard
from points.dashboard import Period
from points.forms import PERIOD_BACKWARDS_MESSAGE, PERIOD_TOO_LONG_MESSAGE
from points.models import (
    Account,
    ModelRate,
    RefusalDay,
    RefusalReason,
    Tier,
    Transaction,
    TransactionType,
)
from points.pricing import BASIS_POINTS, rates_for
from points.services import TokenCount
from tests.billing import conftest as billing_fixtures
from tests.billing.conftest import LocalStripe

pytestmark = pytest.mark.django_db

# Billing's fixtures, for the orders of the sales section (localstripe).
localstripe = billing_fixtures.localstripe
webhook_secret = billing_fixtures.webhook_secret
stripe_on = billing_fixtures.stripe_on
pack = billing_fixtures.pack
make_order = billing_fixtures.make_order
charge_card = billing_fixtures.charge_card

URL = "/admin/points/dashboard/"
FREE_POINTS = 100
# 23:50 on 30 November and 00:10 on 1 December 2026 in Asia/Seoul (UTC+9).
BEFORE_MIDNIGHT = datetime(2026, 11, 30, 14, 50, tzinfo=UTC)
AFTER_MIDNIGHT = datetime(2026, 11, 30, 15, 10, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
PERIOD = Period(since=date(2026, 11, 25), until=date(2026, 12, 1))
QUERY = {"since": "2026-11-25", "until": "2026-12-01"}
DAY_BEFORE, DAY_AFTER = date(2026, 11, 30), date(2026, 12, 1)


@dataclass
class Seeded:
    heavy: Account
    gold: Account
    light: Account
    refused: Account


def turn(
    account: Account,
    model: str,
    prompt: int,
    completion: int,
    *,
    reported: TokenCount | None = None,
    expire: bool = False,
) -> None:
    """Play one chat turn through reserve and settle, at the model's rates now."""
    reservation = services.reserve(
        account=account,
        model=model,
        rates=rates_for(model),
        prompt_tokens=prompt,
        completion_tokens=max(completion, 1),
        minimum_completion_tokens=1,
        ttl_seconds=3 if expire else None,
    )
    if expire:
        services.expire_holds(now=timezone.now() + timedelta(seconds=4))
    services.settle(
        reservation=reservation,
        counted=TokenCount(prompt, completion),
        reported=reported,
    )


@pytest.fixture
def seeded(
    make_user: Callable[..., User], staff_user: User, settings: object
) -> Seeded:
    """Turns on both sides of a Seoul midnight: free points, a tier, a rate change,
    a capped settle after expiry, a refund, and refusals of both kinds."""
    settings.DAILY_FREE_POINTS = FREE_POINTS
    ModelRate.objects.create(
        model="rated", prompt_rate=Decimal("0.5"), completion_rate=Decimal("1.5")
    )
    gold_tier = Tier.objects.create(code="gold", name="Gold", discount_bps=1_000)
    with time_machine.travel(BEFORE_MIDNIGHT, tick=False):
        heavy, gold, light, refused = (
            services.account_of(user=make_user()) for _ in range(4)
        )
        services.set_tier(
            account=gold, tier=gold_tier, reason="test", by_user=staff_user
        )
        turn(heavy, "rated", 33, 7)
        turn(heavy, "plain", 5, 3)
        turn(gold, "rated", 21, 11)
        turn(light, "plain", 1, 0)
        # A settle after its hold expired, capped at the hold: uncharged points.
        turn(heavy, "rated", 10, 20, reported=TokenCount(10, 4_000), expire=True)
        services.grant(account=light, amount=7, type=TransactionType.REFUND)
        services.set_spending_limits(account=refused, daily=1, monthly=None)
        with pytest.raises(services.SpendingLimitReached):
            turn(refused, "plain", 50, 50)
    with time_machine.travel(AFTER_MIDNIGHT, tick=False):
        # The rate changes after the first day's turns.
        rate = ModelRate.objects.get(model="rated")
        rate.prompt_rate = Decimal("0.75")
        rate.save()
        turn(heavy, "rated", 13, 17)
        turn(gold, "plain", 9, 9)
        services.adjust(
            account=light,
            delta=-services.account_of(user=light.user).available,
            reason="drain",
            by_user=staff_user,
        )
        with pytest.raises(services.InsufficientPoints):
            turn(light, "plain", 40, 40)
    return Seeded(heavy=heavy, gold=gold, light=light, refused=refused)


@pytest.fixture
def staff_client(client: Client, staff_user: User) -> Client:
    client.force_login(staff_user)
    return client


def chat_rows() -> list[Transaction]:
    return list(
        Transaction.objects.filter(
            type=TransactionType.CHAT_USAGE,
            created_at__gte=PERIOD.start,
            created_at__lt=PERIOD.end,
        )
    )


def local_day(moment: datetime) -> date:
    return timezone.localtime(moment).date()


def board(**options: object) -> Dashboard:
    return Dashboard(
        period=PERIOD,
        threshold=options.get("threshold", 1_000),
        top=options.get("top", 20),
        query="",
    )


def values(table_rows: list) -> list[list[object]]:
    return [[cell.value for cell in row] for row in table_rows]


def get(client: Client, **params: str) -> object:
    with time_machine.travel(NOW, tick=False):
        return client.get(URL, {**QUERY, **params})


# Access -------------------------------------------------------------------------


def test_dashboard_redirects_anonymous_visitors_to_the_admin_login(
    client: Client,
) -> None:
    response = client.get(URL)

    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


def test_dashboard_redirects_users_who_are_not_staff_to_the_admin_login(
    client: Client, user: User
) -> None:
    client.force_login(user)

    response = client.get(URL)

    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


def test_dashboard_refuses_staff_without_permission_to_view_the_ledger(
    client: Client, make_user: Callable[..., User]
) -> None:
    client.force_login(make_user(is_staff=True))

    assert client.get(URL).status_code == 403


def test_points_app_in_the_admin_links_to_the_dashboard(staff_client: Client) -> None:
    for page in ("/admin/", "/admin/points/"):
        assert URL in staff_client.get(page).content.decode()


# Period form ---------------------------------------------------------------------


def test_dashboard_shows_a_message_for_a_period_longer_than_366_days(
    staff_client: Client,
) -> None:
    response = get(staff_client, since="2025-01-01", until="2026-12-01")

    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert shown == [str(PERIOD_TOO_LONG_MESSAGE % {"days": 366})]


def test_dashboard_shows_a_message_for_a_backwards_or_malformed_period(
    staff_client: Client,
) -> None:
    backwards = get(staff_client, since="2026-12-01", until="2026-11-01")
    malformed = get(staff_client, since="yesterday", threshold="-3")

    assert [str(m) for m in backwards.context["messages"]] == [
        str(PERIOD_BACKWARDS_MESSAGE)
    ]
    assert malformed.status_code == 200
    assert len(list(malformed.context["messages"])) == 2


def test_dashboard_period_of_last_days_ends_today(staff_client: Client) -> None:
    with time_machine.travel(NOW, tick=False):
        response = staff_client.get(URL, {"days": "7"})

    assert response.context["period"] == Period(
        since=date(2026, 11, 25), until=date(2026, 12, 1)
    )


# Sections ----------------------------------------------------------------------


def test_usage_table_equals_the_ledger_per_local_day_and_model(seeded: Seeded) -> None:
    expected: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for row in chat_rows():
        sums = expected[(local_day(row.created_at), row.model)]
        for i, value in enumerate(
            (1, row.prompt_tokens, row.completion_tokens, -row.amount, -row.free_amount)
        ):
            sums[i] += value

    table = board().table_usage()

    assert values(table.rows) == [
        [day, model, *sums] for (day, model), sums in sorted(expected.items())
    ]
    # Both sides of the Seoul midnight, with free points in the charges.
    assert {day for day, _model in expected} == {DAY_BEFORE, DAY_AFTER}
    assert sum(sums[4] for sums in expected.values()) > 0


def test_active_users_are_accounts_with_a_chat_turn_that_day(seeded: Seeded) -> None:
    expected: dict[date, set[int]] = defaultdict(set)
    for row in chat_rows():
        expected[local_day(row.created_at)].add(row.account_id)

    table = board().table_active()

    assert values(table.rows) == [
        [day, len(accounts)] for day, accounts in sorted(expected.items())
    ]


def test_top_users_rank_by_points_with_their_pattern(seeded: Seeded) -> None:
    points: Counter = Counter()
    turns: Counter = Counter()
    tokens: Counter = Counter()
    days: dict[int, set[date]] = defaultdict(set)
    by_model: dict[int, Counter] = defaultdict(Counter)
    for row in chat_rows():
        points[row.account_id] -= row.amount
        turns[row.account_id] += 1
        tokens[row.account_id] += row.prompt_tokens + row.completion_tokens
        days[row.account_id].add(local_day(row.created_at))
        by_model[row.account_id][row.model] -= row.amount
    ranked = sorted(points, key=lambda account: (-points[account], account))[:2]

    table = board(top=2).table_top()

    assert values(table.rows) == [
        [
            account,
            Account.objects.get(pk=account).user.email,
            points[account],
            turns[account],
            len(days[account]),
            turns[account] / len(days[account]),
            tokens[account] / turns[account],
            min(by_model[account], key=lambda m: (-by_model[account][m], m)),
            max(days[account]),
        ]
        for account in ranked
    ]


def test_low_balance_lists_recently_active_accounts_below_the_threshold(
    seeded: Seeded,
) -> None:
    threshold = 1_000
    recent = {
        row.account_id
        for row in Transaction.objects.filter(
            type=TransactionType.CHAT_USAGE,
            created_at__gte=Period(since=date(2026, 11, 25), until=DAY_AFTER).start,
        )
    }
    expected = sorted(
        (
            account
            for account in Account.objects.filter(pk__in=recent)
            if account.available <= 0 or account.available < threshold
        ),
        key=lambda account: (account.available, account.pk),
    )

    with time_machine.travel(NOW, tick=False):
        table = board(threshold=threshold).table_low()

    assert [row[0].value for row in table.rows] == [a.pk for a in expected]
    assert [row[4].value for row in table.rows] == [a.available for a in expected]
    assert seeded.light.pk in [a.pk for a in expected]
    assert seeded.refused.pk not in [a.pk for a in expected]


def test_refusals_are_counted_per_day_and_reason(seeded: Seeded) -> None:
    table = board().table_refusals()

    assert values(table.rows) == [
        [DAY_BEFORE, RefusalReason.SPENDING_LIMIT, 1, 1],
        [DAY_AFTER, RefusalReason.INSUFFICIENT_POINTS, 1, 1],
    ]


def test_points_per_token_groups_add_up_to_the_ledger_and_explain_the_difference(
    seeded: Seeded,
) -> None:
    sums: dict[tuple, Counter] = defaultdict(Counter)
    for row in chat_rows():
        group = sums[(row.model, row.tier)]
        group.update(
            turns=1,
            prompt=row.prompt_tokens,
            completion=row.completion_tokens,
            list_cost=row.list_cost,
            discount=row.discount,
            uncharged=row.uncharged_points,
            charged=-row.amount,
            free=-row.free_amount,
        )

    groups = board().rates

    assert [(g.model, g.tier) for g in groups] == sorted(sums)
    for group in groups:
        ledger = sums[(group.model, group.tier)]
        # charged = list cost - discount - uncharged, group by group.
        assert ledger["charged"] == (
            ledger["list_cost"] - ledger["discount"] - ledger["uncharged"]
        )
        assert (
            group.turns,
            group.prompt_tokens,
            group.completion_tokens,
            group.list_cost,
            group.discount,
            group.uncharged,
            group.charged,
            group.free,
        ) == tuple(
            ledger[k]
            for k in (
                "turns",
                "prompt",
                "completion",
                "list_cost",
                "discount",
                "uncharged",
                "charged",
                "free",
            )
        )
        rates = rates_for(group.model)
        bps = Tier.objects.get(code=group.tier).discount_bps if group.tier else 0
        exact = (
            ledger["prompt"] * rates.prompt + ledger["completion"] * rates.completion
        )
        expected = exact * (BASIS_POINTS - bps) / BASIS_POINTS
        assert group.expected == expected
        assert group.difference == ledger["charged"] - expected
        assert group.difference == (
            group.rounding_and_rate_changes
            + group.discount_difference
            - ledger["uncharged"]
        )
    by_key = {(g.model, g.tier): g for g in groups}
    # The capped settle shows as uncharged points; the rate change is flagged.
    assert by_key[("rated", "")].uncharged > 0
    assert by_key[("rated", "")].rates_changed_at is not None
    assert by_key[("plain", "")].rates_changed_at is None


def test_refunds_are_shown_per_day_and_type(seeded: Seeded) -> None:
    rows = Transaction.objects.filter(type=TransactionType.REFUND)

    table = board().table_refunds()

    assert values(table.rows) == [
        [DAY_BEFORE, TransactionType.REFUND, rows.count(), sum(r.amount for r in rows)]
    ]


# Orders and codes ------------------------------------------------------------


@pytest.fixture
def sales(
    make_user: Callable[..., User],
    make_order: Callable,
    charge_card: Callable,
    pack: PointPack,
    stripe_on: LocalStripe,
    staff_user: User,
) -> list[Order]:
    small = PointPack.objects.create(name="Small", points=1_000, price=1_000)
    paid = []
    for moment, chosen in (
        (BEFORE_MIDNIGHT, pack),
        (BEFORE_MIDNIGHT, small),
        (AFTER_MIDNIGHT, pack),
    ):
        with time_machine.travel(moment, tick=False):
            order = make_order(make_user(), chosen)
            charge_card(order)
            paid.append(billing.sync_payment(payment_intent_id=order.provider_id))
    with time_machine.travel(AFTER_MIDNIGHT, tick=False):
        billing.refund_order(order_id=paid[0].pk, amount=1_000)
        for code in codes.create_codes(points=300, count=2, created_by=staff_user):
            codes.redeem_code(user=make_user(), code=code, address="127.0.0.1")
    return paid


def test_sales_are_orders_paid_per_local_day_and_pack(sales: list[Order]) -> None:
    expected: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for order in Order.objects.filter(paid_at__isnull=False):
        sums = expected[(local_day(order.paid_at), order.pack_name, order.currency)]
        for i, value in enumerate((1, order.points, order.bonus_points, order.amount)):
            sums[i] += value

    table = board().table_sales()

    assert values(table.rows) == [
        [*key, *sums] for key, sums in sorted(expected.items())
    ]


def test_order_refunds_and_their_reversals_are_shown(
    sales: list[Order], staff_client: Client
) -> None:
    refunded = Order.objects.get(pk=sales[0].pk)
    reversals = Transaction.objects.filter(order=refunded, amount__lt=0)

    orders = board().table_order_refunds()
    points = board().table_refunds()

    # The day the refund was made (AFTER_MIDNIGHT), in Seoul.
    assert values(orders.rows) == [
        [
            DAY_AFTER,
            refunded.currency,
            1,
            refunded.refunded_amount,
            0,
            refunded.reversed_points + refunded.reversed_bonus,
        ]
    ]
    assert sorted(row[3] for row in values(points.rows)) == sorted(
        r.amount for r in reversals
    )
    # The orders figure opens the changes it counts.
    listed = staff_client.get(orders.rows[0][2].url).context["cl"].queryset
    assert [(change.order_id, change.amount) for change in listed] == [
        (refunded.pk, refunded.refunded_amount)
    ]


def test_money_taken_back_opens_the_changes_of_its_day(
    sales: list[Order], staff_client: Client
) -> None:
    # given a second order refunded in part on the day before the first's refund
    with time_machine.travel(BEFORE_MIDNIGHT + timedelta(minutes=5), tick=False):
        billing.refund_order(order_id=sales[1].pk, amount=300)

    table = board().table_order_refunds()

    # then each day's figure lists that day's changes, and only them
    assert [row[0].value for row in table.rows] == [DAY_BEFORE, DAY_AFTER]
    opened = [
        [
            (change.order_id, change.amount)
            for change in staff_client.get(row[2].url).context["cl"].queryset
        ]
        for row in table.rows
    ]
    assert opened == [[(sales[1].pk, 300)], [(sales[0].pk, 1_000)]]


def test_redemptions_are_code_uses_per_day(sales: list[Order]) -> None:
    uses = Redemption.objects.select_related("code")

    table = board().table_redemptions()

    assert values(table.rows) == [
        [
            DAY_AFTER,
            uses.count(),
            sum(use.code.points for use in uses),
        ]
    ]


# Page, exports, drill-downs --------------------------------------------------------


def test_every_table_exports_as_csv_equal_to_the_table(
    staff_client: Client, seeded: Seeded
) -> None:
    for key, build in Dashboard.TABLES.items():
        with time_machine.travel(NOW, tick=False):
            table = build(board())
        response = get(staff_client, export=key)

        parsed = list(csv.reader(io.StringIO(response.content.decode())))

        assert response["Content-Type"].startswith("text/csv")
        assert parsed == table.csv_rows()
        assert len(parsed) == len(table.rows) + 1


def test_exported_text_cells_never_run_as_formulas(
    staff_client: Client, make_user: Callable[..., User]
) -> None:
    # An address may start with "=": the users' own text is exported as text.
    with time_machine.travel(BEFORE_MIDNIGHT, tick=False):
        turn(services.account_of(user=make_user("=1+1@example.com")), "plain", 5, 3)

    response = get(staff_client, export="top")

    cells = [
        cell
        for row in csv.reader(io.StringIO(response.content.decode()))
        for cell in row
    ]
    assert "'=1+1@example.com" in cells
    assert "=1+1@example.com" not in cells


def test_unknown_export_is_not_found(staff_client: Client) -> None:
    assert get(staff_client, export="nothing").status_code == 404


def test_drill_down_lists_the_accounts_behind_a_days_figure(
    staff_client: Client, seeded: Seeded
) -> None:
    expected: Counter = Counter()
    for row in chat_rows():
        if local_day(row.created_at) == DAY_BEFORE and row.model == "rated":
            expected[row.account_id] -= row.amount

    response = get(staff_client, drill="usage", day="2026-11-30", model="rated")

    drill = response.context["drill"]
    assert {row[0].value: row[5].value for row in drill.rows} == dict(expected)
    assert all(row[0].url.startswith("/admin/points/account/") for row in drill.rows)


def test_drill_down_lists_the_accounts_refused_on_a_day(
    staff_client: Client, seeded: Seeded
) -> None:
    response = get(staff_client, drill="refusals", day="2026-11-30")

    drill = response.context["drill"]
    assert [row[0].value for row in drill.rows] == [seeded.refused.pk]


def test_points_links_open_the_ledger_rows_they_sum(
    staff_client: Client, seeded: Seeded
) -> None:
    row = board().table_usage().rows[0]
    day, model, charged = row[0].value, row[1].value, row[5]

    response = staff_client.get(charged.url)

    listed = list(response.context["cl"].queryset)
    assert listed
    assert -sum(entry.amount for entry in listed) == charged.value
    assert {(local_day(e.created_at), e.model) for e in listed} == {(day, model)}


def test_dashboard_page_shows_every_section_with_its_chart_data(
    staff_client: Client, seeded: Seeded
) -> None:
    response = get(staff_client)

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="dashboard-charts"' in page
    assert page.count("<canvas") == len(response.context["chart_keys"])
    charts = response.context["charts"]
    assert sum(charts["active"]["data"]["datasets"][0]["data"]) == sum(
        row[1].value for row in board().table_active().rows
    )


def test_dashboard_query_count_does_not_grow_with_the_users(
    staff_client: Client,
    seeded: Seeded,
    make_user: Callable[..., User],
    django_assert_num_queries: Callable,
) -> None:
    with django_assert_num_queries(17):
        get(staff_client)
    with time_machine.travel(AFTER_MIDNIGHT, tick=False):
        for _ in range(5):
            turn(services.account_of(user=make_user()), "plain", 3, 3)
        assert RefusalDay.objects.exists()

    with django_assert_num_queries(17):
        get(staff_client)
