"""Requests succeed after PostgreSQL drops every connection, as on a restart.

PostgreSQL terminating the backends (pg_terminate_backend) is what a restart
does to the connections the pool holds.
"""

from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
from django.db import connection
from django.test import Client

from accounts.api_keys import create_api_key
from accounts.models import ApiKey, User
from common.db_retry import close_broken_connections
from tests.live_server import server_environment, uvicorn_server

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TERMINATE_OTHER_BACKENDS = """
    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
"""
PAGES = ["/points/", "/settings/api-keys/", "/api/user/points"]
API_READS = ["/api/user/points", "/api/conversations", "/api/user/points/history"]


def connection_params() -> dict[str, str]:
    settings = connection.settings_dict
    params = {
        "dbname": settings["NAME"],
        "user": settings["USER"],
        "password": settings["PASSWORD"],
        "host": settings["HOST"],
        "port": str(settings["PORT"] or ""),
    }
    return {name: value for name, value in params.items() if value}


def terminate_other_connections() -> int:
    """Terminate every other connection to the test database; return how many."""
    with psycopg.connect(**connection_params(), autocommit=True) as admin:
        return len(admin.execute(TERMINATE_OTHER_BACKENDS).fetchall())


def database_url() -> str:
    params = connection_params()
    credentials = params["user"] + (
        f":{params['password']}" if "password" in params else ""
    )
    address = params.get("host", "127.0.0.1") + f":{params.get('port', '5432')}"
    return f"postgres://{credentials}@{address}/{params['dbname']}"


def test_pages_and_writes_work_after_postgresql_drops_every_connection(
    user: User,
) -> None:
    # given a signed-in user whose requests went through the pool
    client = Client()
    client.force_login(user)
    assert [client.get(page).status_code for page in PAGES] == [200] * 3

    # when PostgreSQL terminates every connection, the test client's included
    assert terminate_other_connections() >= 1

    # then the pages still answer (each read runs again on a new connection once)
    assert [client.get(page).status_code for page in PAGES] == [200] * 3
    # and a write succeeds
    response = client.post("/settings/api-keys/", {"name": "after restart"})
    assert response.status_code == 302
    assert ApiKey.objects.filter(user=user, name="after restart").exists()


def test_server_hands_out_live_connections_after_postgresql_drops_them(
    make_user: Callable[..., User], tmp_path: Path
) -> None:
    # given the production server on this database, its pool in use
    secret = create_api_key(user=make_user(), name="server")[1]
    env = server_environment(
        tmp_path, DATABASE_URL=database_url(), DEMO_STREAM_DELAY_MS="0"
    )
    headers = {"Authorization": f"Bearer {secret}"}
    with (
        uvicorn_server(env, tmp_path / "uvicorn.log") as base_url,
        httpx.Client(base_url=base_url, headers=headers, timeout=30) as http,
    ):
        assert http.get("/api/user/points").status_code == 200

        # when PostgreSQL terminates every connection (the server's pooled ones,
        # and this test's own, which it drops as the retry middleware would)
        assert terminate_other_connections() >= 1
        close_broken_connections()

        # then a write first, then reads, all succeed on new connections
        chat = http.post("/api/chat", json={"message": "after restart"})
        statuses = [http.get(path).status_code for path in API_READS]

    assert chat.status_code == 200
    assert statuses == [200] * 3
