"""The benchmarks run from a fresh checkout and print their tables, briefly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_SECONDS = 300


def run_benchmark(name: str, *args: str) -> str:
    """Run `python -m bench.<name>` as the README says; return what it printed."""
    # The benchmarks make their own databases on the test suite's server.
    env = {**os.environ, "BENCH_POSTGRES_URL": os.environ.get("DATABASE_URL", "")}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_tokens_benchmark_prints_ours_against_tiktoken() -> None:
    assert "ours/tiktoken" in run_benchmark("tokens", "--repeats", "1")


@pytest.mark.postgres
def test_ledger_benchmark_replays_the_captured_statements() -> None:
    printed = run_benchmark("ledger", "--seconds", "0.1", "--rounds", "1")

    assert "services/raw" in printed
    assert "prepared statements" in printed


@pytest.mark.postgres
def test_chat_benchmark_serves_every_target() -> None:
    printed = run_benchmark("chat", "--turns", "10", "--users", "2", "--workers", "1")

    assert "/api/chat (session)" in printed
    assert "2 users at once" in printed


@pytest.mark.postgres
def test_usage_benchmark_seeds_measures_and_explains() -> None:
    printed = run_benchmark(
        "usage",
        *("--users", "50", "--rows", "5000", "--heavy", "1000"),
        *("--requests", "3", "--throwaway"),
    )

    assert "rollup.rebuild()" in printed
    assert "p95/ledger" in printed
    assert "/admin/points/dashboard/?days=90" in printed
    assert "Execution Time" in printed or " ms  " in printed
    assert "points_usageday" in printed


@pytest.mark.postgres
def test_gateway_benchmark_compares_with_the_upstream() -> None:
    # LiteLLM takes minutes to install and start: the README's run has it.
    printed = run_benchmark(
        "gateway",
        *("--rounds", "1", "--samples", "2", "--seconds", "0.5", "--no-litellm"),
    )

    assert "LiteLLM: not asked for (--no-litellm)" in printed
    assert "EORA added" in printed
    assert "EORA 32 keys" in printed
