"""/metrics under several uvicorn workers adds up every worker's counters.

The real server runs with two workers and PROMETHEUS_MULTIPROC_DIR; turns are
sent until both workers have served some, then one scrape, whichever worker
answers it, reports all of them, equal to the ledger.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

from tests.live_server import LiveServer, live_server, shell
from tests.prometheus import TOKEN, Samples, parse, value

pytestmark = pytest.mark.own_server

MODEL = "eora-demo"
BATCH = 8
MAX_TURNS = 80
CLIENT_TIMEOUT_SECONDS = 30

# Print the ledger's chat_usage totals.
LEDGER_TOTALS = """
import json
from django.db.models import Count, Sum
from points.models import Transaction
rows = Transaction.objects.filter(type="chat_usage", model=%(model)r)
print(json.dumps(rows.aggregate(
    rows=Count("pk"), prompt=Sum("prompt_tokens"),
    completion=Sum("completion_tokens"), amount=Sum("amount"),
)))
"""


def turns_by_process(multiproc_dir: Path) -> dict[str, float]:
    """Return the turns each process wrote to its counter file."""
    served = {}
    for path in multiproc_dir.glob("counter_*.db"):
        turns = sum(
            count
            for key, count, _timestamp, _position in (
                MmapedDict.read_all_values_from_file(str(path))
            )
            if json.loads(key)[0] == "eora_chat_turns"
        )
        served[path.stem.removeprefix("counter_")] = turns
    return served


def send_turn(server: LiveServer, secret: str) -> int:
    # A new connection each time, so that either worker may accept it.
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        timeout=CLIENT_TIMEOUT_SECONDS,
    )
    return response.status_code


def scrape_server(server: LiveServer) -> Samples:
    response = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200, response.text
    return parse(response.text)


def test_one_scrape_reports_the_turns_of_every_worker(tmp_path: Path) -> None:
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    with live_server(
        tmp_path,
        workers=2,
        METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir),
        DEMO_STREAM_DELAY_MS="5",
    ) as server:
        secret = server.add_users(["metrics@example.com"], "pw-metrics-123")[
            "metrics@example.com"
        ]
        # given turns sent until both workers have served some
        sent = 0
        with ThreadPoolExecutor(max_workers=BATCH) as pool:
            while sent < MAX_TURNS:
                statuses = list(
                    pool.map(lambda _: send_turn(server, secret), range(BATCH))
                )
                assert statuses == [200] * BATCH
                sent += BATCH
                served = turns_by_process(multiproc_dir)
                if sum(1 for turns in served.values() if turns) >= 2:
                    break
        assert sum(1 for turns in served.values() if turns) == 2, served

        # when it is scraped, whichever worker answers
        scrapes = [scrape_server(server) for _ in range(4)]
        ledger = json.loads(shell(server.env, LEDGER_TOTALS % {"model": MODEL}))

    # then every scrape reports all the turns, equal to the ledger
    assert sum(served.values()) == sent == ledger["rows"]
    for samples in scrapes:
        turns = value(
            samples, "eora_chat_turns_total", endpoint="v1", outcome="complete"
        )
        assert turns == sent
        assert (
            value(
                samples,
                "django_http_requests_total_by_view_transport_method_total",
                view="v1-chat-completions",
                transport="http",
                method="POST",
            )
            == sent
        )
        assert (
            value(samples, "eora_chat_billed_tokens_total", model=MODEL, kind="prompt")
            == ledger["prompt"]
        )
        assert (
            value(
                samples, "eora_chat_billed_tokens_total", model=MODEL, kind="completion"
            )
            == ledger["completion"]
        )
        assert (
            value(samples, "eora_chat_points_charged_total", model=MODEL)
            == -ledger["amount"]
        )
        assert (
            value(samples, "eora_chat_provider_latency_seconds_count", model=MODEL)
            == sent
        )
        # and the database's gauges come once, from the scraping process
        assert value(samples, "eora_points_holds_open") == 0
