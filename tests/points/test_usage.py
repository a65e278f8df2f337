"""The usage selectors: every figure equals the ledger rows it summarises."""

from datetime import date, timedelta

import pytest

from accounts.models import User
from points.models import Account, TransactionType
from points.usage import (
    WEB_PAGES_LABEL,
    Granularity,
    GroupBy,
    account_usage,
    period_start,
    periods_between,
)
from tests.points.usage_ledger import (
    SINCE,
    UNTIL,
    SeededLedger,
    credits_of,
    figures_of,
    ledger_rows,
    local_day,
    seed_ledger,
)


@pytest.fixture
def seeded(settings, user: User) -> SeededLedger:
    return seed_ledger(user, settings)


def as_dict(figures: object) -> dict[str, int]:
    return dict(vars(figures))


def test_totals_and_credits_equal_the_ledger_rows_of_the_range(
    seeded: SeededLedger,
) -> None:
    usage = account_usage(account=seeded.account, since=SINCE, until=UNTIL)

    rows = ledger_rows(seeded.account, SINCE, UNTIL)
    assert as_dict(usage.totals) == figures_of(rows)
    assert usage.credits == credits_of(rows)
    assert usage.totals.free_points > 0
    assert usage.totals.uncharged_points > 0
    assert usage.credits[TransactionType.REFUND] == 321
    assert usage.credits[TransactionType.DAILY_FREE] > 0


def test_day_series_has_every_day_and_splits_turns_at_midnight_kst(
    seeded: SeededLedger,
) -> None:
    usage = account_usage(account=seeded.account, since=SINCE, until=UNTIL)

    rows = ledger_rows(seeded.account, SINCE, UNTIL)
    expected = [
        (
            SINCE + timedelta(days=n),
            figures_of([r for r in rows if local_day(r) == SINCE + timedelta(days=n)]),
        )
        for n in range((UNTIL - SINCE).days + 1)
    ]
    assert [(row.period, as_dict(row.figures)) for row in usage.series] == expected
    by_day = {row.period: row.figures.turns for row in usage.series}
    assert (by_day[date(2026, 11, 30)], by_day[date(2026, 12, 1)]) == (2, 4)
    assert by_day[date(2026, 11, 29)] == 0


@pytest.mark.parametrize(
    ("granularity", "periods"),
    [
        (Granularity.WEEK, [date(2026, 11, 23), date(2026, 11, 30), date(2026, 12, 7)]),
        (Granularity.MONTH, [date(2026, 11, 1), date(2026, 12, 1)]),
    ],
)
def test_weeks_start_on_monday_and_months_on_the_first(
    seeded: SeededLedger, granularity: Granularity, periods: list[date]
) -> None:
    usage = account_usage(
        account=seeded.account, since=SINCE, until=UNTIL, granularity=granularity
    )

    rows = ledger_rows(seeded.account, SINCE, UNTIL)
    assert [row.period for row in usage.series] == periods
    for row in usage.series:
        assert as_dict(row.figures) == figures_of(
            [r for r in rows if period_start(local_day(r), granularity) == row.period]
        )


def test_grouped_by_model_sums_each_model_per_day(seeded: SeededLedger) -> None:
    usage = account_usage(
        account=seeded.account, since=SINCE, until=UNTIL, group_by=GroupBy.MODEL
    )

    rows = ledger_rows(seeded.account, SINCE, UNTIL)
    models = {r.model for r in rows if r.type == TransactionType.CHAT_USAGE}
    assert {group.id for group in usage.groups} == models
    assert len(usage.series) == len(usage.periods) * len(models)
    for row in usage.series:
        assert as_dict(row.figures) == figures_of(
            [r for r in rows if local_day(r) == row.period and r.model == row.group]
        )


def test_grouped_by_api_key_labels_web_pages_and_revoked_keys(
    seeded: SeededLedger,
) -> None:
    usage = account_usage(
        account=seeded.account,
        since=SINCE,
        until=UNTIL,
        granularity=Granularity.MONTH,
        group_by=GroupBy.API_KEY,
    )

    rows = ledger_rows(seeded.account, SINCE, UNTIL)
    labels = {group.id: (group.label, group.revoked) for group in usage.groups}
    assert labels == {
        "0": (str(WEB_PAGES_LABEL), False),
        str(seeded.key.pk): ("CI server", False),
        str(seeded.revoked_key.pk): ("Old laptop", True),
    }
    for row in usage.series:
        assert as_dict(row.figures) == figures_of(
            [
                r
                for r in rows
                if period_start(local_day(r), Granularity.MONTH) == row.period
                and str(r.api_key_id or 0) == row.group
            ]
        )


def test_a_range_without_use_has_zero_days(account: Account) -> None:
    usage = account_usage(
        account=account, since=date(2020, 1, 1), until=date(2020, 1, 7)
    )

    assert len(usage.series) == 7
    assert all(row.figures.turns == 0 for row in usage.series)
    assert usage.totals.points == 0


def test_grouped_range_without_use_has_no_groups(account: Account) -> None:
    usage = account_usage(
        account=account,
        since=date(2020, 1, 1),
        until=date(2020, 1, 7),
        group_by=GroupBy.MODEL,
    )

    assert (usage.groups, usage.series) == ([], [])


def test_periods_between_covers_a_year_end() -> None:
    assert periods_between(date(2026, 12, 30), date(2027, 2, 2), Granularity.MONTH) == [
        date(2026, 12, 1),
        date(2027, 1, 1),
        date(2027, 2, 1),
    ]
