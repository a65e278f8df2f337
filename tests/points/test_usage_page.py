"""/points/usage/: charts, totals, credits and conversations equal the ledger."""

import json
import re
from datetime import date, timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from accounts.models import User
from chat.models import Message
from points.models import TransactionType
from points.usage import REVOKED_KEY_LABEL, WEB_PAGES_LABEL
from tests.points.usage_ledger import (
    TODAY,
    SeededLedger,
    credits_of,
    figures_of,
    ledger_rows,
    local_day,
    seed_ledger,
)

URL = reverse("points:usage")
UNTIL = date(2026, 12, 9)


@pytest.fixture
def seeded(settings, user: User) -> SeededLedger:
    return seed_ledger(user, settings)


@pytest.fixture
def signed_in(client: Client, seeded: SeededLedger) -> Client:
    client.force_login(seeded.user)
    return client


def get(client: Client, **params: str):
    with time_machine.travel(TODAY, tick=False):
        return client.get(URL, params)


def shown_figures(html: str) -> dict[str, int]:
    return {
        name: int(value.replace(",", ""))
        for name, value in re.findall(r'data-figure="(\w+)">([\d,]+)<', html)
    }


def chart_data(html: str) -> dict:
    match = re.search(
        r'<script id="usage-data" type="application/json">(.*?)</script>', html
    )
    assert match, "the page embeds no chart data"
    return json.loads(match.group(1))


def days_of(since: date, until: date) -> list[date]:
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


def test_page_totals_equal_the_ledger_rows_of_the_last_30_days(
    signed_in: Client, seeded: SeededLedger
) -> None:
    html = get(signed_in).content.decode()

    since = UNTIL - timedelta(days=29)
    assert shown_figures(html) == figures_of(ledger_rows(seeded.account, since, UNTIL))
    assert "2026-11-10 – 2026-12-09 (Asia/Seoul)" in html


def test_page_charts_equal_the_ledger_per_day_model_and_key(
    signed_in: Client, seeded: SeededLedger
) -> None:
    data = chart_data(get(signed_in, days="30").content.decode())

    since = UNTIL - timedelta(days=29)
    days = days_of(since, UNTIL)
    rows = ledger_rows(seeded.account, since, UNTIL)
    turns = [r for r in rows if r.type == TransactionType.CHAT_USAGE]
    assert data["labels"] == [day.isoformat() for day in days]

    def points(day: date, match) -> int:
        return -sum(r.amount for r in turns if local_day(r) == day and match(r))

    by_model = {d["label"]: d["data"] for d in data["pointsByModel"]}
    assert by_model == {
        model: [points(day, lambda r, m=model: r.model == m) for day in days]
        for model in {r.model for r in turns}
    }
    key_labels = {
        0: str(WEB_PAGES_LABEL),
        seeded.key.pk: seeded.key.name,
        seeded.revoked_key.pk: REVOKED_KEY_LABEL % {"name": seeded.revoked_key.name},
    }
    by_key = {d["label"]: d["data"] for d in data["pointsByKey"]}
    assert by_key == {
        label: [points(day, lambda r, k=key: (r.api_key_id or 0) == k) for day in days]
        for key, label in key_labels.items()
    }
    prompt, completion = data["tokens"]
    assert prompt["data"] == [
        figures_of([r for r in rows if local_day(r) == day])["prompt_tokens"]
        for day in days
    ]
    assert completion["data"] == [
        figures_of([r for r in rows if local_day(r) == day])["completion_tokens"]
        for day in days
    ]


def test_page_credits_equal_the_ledger(signed_in: Client, seeded: SeededLedger) -> None:
    response = get(signed_in, days="7")

    rows = ledger_rows(seeded.account, UNTIL - timedelta(days=6), UNTIL)
    expected = [
        (TransactionType(type).label, amount)
        for type, amount in credits_of(rows).items()
        if amount
    ]
    assert response.context["credits"] == expected
    table = response.content.decode().split('id="usage-credits"')[1]
    for label, amount in expected:
        assert str(label) in table
        assert f"{amount:+,}" in table


def test_page_lists_costliest_conversations_with_links(
    signed_in: Client, seeded: SeededLedger
) -> None:
    html = get(signed_in).content.decode()

    since = UNTIL - timedelta(days=29)
    ids = [
        r.pk
        for r in ledger_rows(seeded.account, since, UNTIL)
        if r.type == TransactionType.CHAT_USAGE
    ]
    spent: dict[str, int] = {}
    for message in Message.objects.filter(transaction_id__in=ids).select_related(
        "transaction"
    ):
        conversation = str(message.conversation_id)
        spent[conversation] = spent.get(conversation, 0) - message.transaction.amount
    table = html.split('id="usage-conversations"')[1].split("</table>")[0]
    links = re.findall(r'href="/chat/([0-9a-f-]{36})/"', table)
    shown = [
        int(p.replace(",", "")) for p in re.findall(r'class="num">([\d,]+)<', table)
    ]
    assert sorted(links) == sorted(spent)
    assert shown[1::2] == [spent[c] for c in links]
    assert shown[1::2] == sorted(spent.values(), reverse=True)


def test_period_switch_shows_7_days_and_marks_the_link(signed_in: Client) -> None:
    response = get(signed_in, days="7")

    html = response.content.decode()
    assert len(chart_data(html)["labels"]) == 7
    assert '<a href="?days=7" aria-current="page">' in html


@pytest.mark.parametrize("days", ["365", "abc", "-1"])
def test_other_periods_fall_back_to_30_days(signed_in: Client, days: str) -> None:
    response = get(signed_in, days=days)

    assert response.status_code == 200
    assert len(chart_data(response.content.decode())["labels"]) == 30


def test_page_without_turns_shows_the_empty_state(client: Client, user: User) -> None:
    client.force_login(user)

    html = client.get(URL).content.decode()

    assert 'id="usage-empty"' in html
    assert "<canvas" not in html
    assert "chart.umd.min.js" not in html


def test_page_needs_login(client: Client, db: None) -> None:
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_page_loads_its_scripts_from_our_origin(signed_in: Client) -> None:
    html = get(signed_in).content.decode()

    assert '<script src="/static/vendor/chartjs/chart.umd.min.js" defer>' in html
    assert '<script src="/static/js/usage.js" defer>' in html
    assert "cdn" not in html.lower()


def test_menu_and_points_page_link_to_usage(client: Client, user: User) -> None:
    client.force_login(user)

    html = client.get(reverse("points:overview")).content.decode()

    assert html.count(f'href="{URL}"') == 2


def test_page_query_count_is_fixed(
    signed_in: Client, django_assert_num_queries
) -> None:
    get(signed_in)  # today's free points are granted on the first request
    # Session, user, the account (twice: header and page), the roll-up, the keys'
    # names, the costliest conversations.
    with django_assert_num_queries(7):
        get(signed_in)
