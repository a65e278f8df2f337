import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from eora.settings import cache_from_url, database_from_url

ROOT = Path(__file__).resolve().parent.parent


def import_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    return subprocess.run(
        [sys.executable, "-c", "import eora.settings"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_settings_refuse_to_start_without_secret_key_when_debug_is_off() -> None:
    result = import_settings(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_settings_allow_development_key_when_debug_is_on() -> None:
    assert import_settings(DEBUG="true").returncode == 0


def test_settings_reject_non_positive_points_per_token() -> None:
    result = import_settings(SECRET_KEY="k", POINTS_PER_TOKEN="0")
    assert "POINTS_PER_TOKEN must be greater than zero" in result.stderr


def test_sqlite_gets_wal_busy_timeout_and_immediate_transactions() -> None:
    config = database_from_url("sqlite:////tmp/eora.sqlite3")
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert config["OPTIONS"]["timeout"] >= 1
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]


def test_postgresql_uses_connection_pool() -> None:
    config = database_from_url("postgres://u@127.0.0.1:5432/eora")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["OPTIONS"]["pool"]["max_size"] >= 1


def test_postgresql_pool_checks_connections_before_handing_them_out() -> None:
    # Django gives the pool psycopg_pool's check_connection when this is on.
    config = database_from_url("postgres://u@127.0.0.1:5432/eora")
    assert config["CONN_HEALTH_CHECKS"] is True


def test_postgresql_pool_holds_at_most_ten_connections_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATABASE_POOL_MAX", raising=False)
    config = database_from_url("postgres://u@127.0.0.1:5432/eora")
    assert config["OPTIONS"]["pool"]["max_size"] == 10


def test_redis_cache_gives_up_on_connect_and_answer_after_timeouts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_CONNECT_TIMEOUT_MS", "150")
    monkeypatch.setenv("REDIS_SOCKET_TIMEOUT_MS", "400")
    config = cache_from_url("redis://127.0.0.1:6379/0")
    assert config["OPTIONS"] == {"socket_connect_timeout": 0.15, "socket_timeout": 0.4}


def test_cache_falls_back_to_the_database_without_redis() -> None:
    config = cache_from_url("")
    assert config["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"


def test_other_databases_are_refused() -> None:
    with pytest.raises(ImproperlyConfigured):
        database_from_url("mysql://u@127.0.0.1/eora")


def test_sqlite_file_database_runs_in_wal_mode(tmp_path: Path) -> None:
    script = (
        "import django; django.setup();"
        "from django.db import connection;"
        "c = connection.cursor(); c.execute('PRAGMA journal_mode');"
        "print(c.fetchone()[0])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "eora.settings",
            "SECRET_KEY": "k",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "wal"


def test_settings_reject_a_metrics_address_that_is_not_one() -> None:
    result = import_settings(SECRET_KEY="k", METRICS_ALLOWED_IPS="10.0.0.0/8,intranet")
    assert "METRICS_ALLOWED_IPS: 'intranet'" in result.stderr


def test_settings_reject_a_missing_prometheus_multiproc_dir(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    result = import_settings(SECRET_KEY="k", PROMETHEUS_MULTIPROC_DIR=str(missing))
    assert f"PROMETHEUS_MULTIPROC_DIR {str(missing)!r} is not a directory" in (
        result.stderr
    )
