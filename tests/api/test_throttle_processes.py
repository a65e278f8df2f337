"""The throttles are shared by every server process through Redis.

Each worker here is its own OS process running Django (eora.settings, a throwaway
SQLite database, the cache on Redis) and calling GET /api/user/points with the same
API key through Django's test client. Together they must get exactly the rate's
number of answers, then 429 with Retry-After and the error envelope.
"""

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.live_server import manage, server_environment, shell

# Its servers run on SQLite files of their own: once per CI run.
pytestmark = pytest.mark.own_server

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
USER_RATE = 10
PROCESS_TIMEOUT_SECONDS = 60

# Print the secret of a new user's API key.
SET_UP = """
from accounts.api_keys import create_api_key, key_for
from accounts.services import register_user

user = register_user(email="throttled@example.com", password=None)
secret = create_api_key(user=user, name="throttled")[1]
# Record the key's use now, so the workers' requests do not race to record it.
key_for(secret)
print(secret)
"""

# argv: cache key prefix, API key, number of requests. Say "ready" once Django is
# loaded, wait for "go", then print each answer as JSON.
WORKER = """
import json
import sys

import django
from django.conf import settings

prefix, secret, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings.CACHES["default"]["KEY_PREFIX"] = prefix
django.setup()

from django.core.cache import cache
from django.test import Client

# Load the code and open the database and Redis connections without spending the
# throttle (an unknown key is refused before the throttles run), so that the
# counted requests of both workers really do overlap.
unknown = Client(headers={"Authorization": "Bearer eora_aaaaaaaaaaaa_" + "a" * 43})
assert unknown.get("/api/user/points").status_code == 401
cache.get("warm-up")
client = Client(headers={"Authorization": f"Bearer {secret}"})
print("ready", flush=True)
assert sys.stdin.readline().strip() == "go"
answers = []
for _ in range(count):
    response = client.get("/api/user/points")
    answers.append(
        {
            "status": response.status_code,
            "retry_after": response.headers.get("Retry-After"),
            "body": response.json(),
        }
    )
print(json.dumps(answers), flush=True)
"""


@dataclass(frozen=True)
class Server:
    env: dict[str, str]
    secret: str


def django_env(tmp_path: Path) -> dict[str, str]:
    return server_environment(
        tmp_path,
        ALLOWED_HOSTS="testserver",
        REDIS_URL=REDIS_URL,
        API_THROTTLE_USER=f"{USER_RATE}/min",
        API_THROTTLE_KEY="1000/min",
        LOG_LEVEL="ERROR",
    )


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        message = f"Redis is not reachable at {REDIS_URL}: {error}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(f"{message} (set CI to make this a failure)")
    yield client
    client.close()


@pytest.fixture
def cache_prefix(redis_client: redis.Redis) -> Iterator[str]:
    prefix = f"eora-throttle-test-{uuid.uuid4().hex}"
    yield prefix
    for key in redis_client.scan_iter(match=f"{prefix}:*"):
        redis_client.delete(key)


@pytest.fixture(scope="module")
def server(
    redis_client: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Server:
    # Asks for Redis first so that a missing one skips before the migrations run.
    env = django_env(tmp_path_factory.mktemp("throttle"))
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    return Server(env=env, secret=shell(env, SET_UP).strip())


class Worker:
    """One OS process sending `count` requests once it is told to go."""

    def __init__(self, server: Server, prefix: str, count: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, prefix, server.secret, str(count)],
            cwd=ROOT,
            env=server.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_until_ready(self) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.process.kill()
            _out, errors = self.process.communicate()
            pytest.fail(f"worker did not start: {line}{errors}")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def answers(self) -> list[dict[str, Any]]:
        out, errors = self.process.communicate(timeout=PROCESS_TIMEOUT_SECONDS)
        assert self.process.returncode == 0, errors
        return json.loads(out)


def run_one_after_another(
    server: Server, prefix: str, counts: list[int]
) -> list[dict[str, Any]]:
    answers = []
    for count in counts:
        worker = Worker(server, prefix, count)
        worker.wait_until_ready()
        worker.go()
        answers += worker.answers()
    return answers


def run_at_once(server: Server, prefix: str, counts: list[int]) -> list[dict[str, Any]]:
    workers = [Worker(server, prefix, count) for count in counts]
    try:
        for worker in workers:
            worker.wait_until_ready()
        for worker in workers:
            worker.go()
        return [answer for worker in workers for answer in worker.answers()]
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()


def assert_throttled(answer: dict[str, Any]) -> None:
    assert answer["status"] == 429
    assert int(answer["retry_after"]) >= 1
    assert answer["body"]["success"] is False
    assert answer["body"]["code"] == "throttled"


def test_second_process_is_throttled_by_the_first_ones_requests(
    server: Server, cache_prefix: str, redis_client: redis.Redis
) -> None:
    # given a process that used 6 of the 10 requests a minute
    # when another process sends 6 more
    answers = run_one_after_another(server, cache_prefix, [6, 6])

    # then it gets the 4 left, then 429
    assert [a["status"] for a in answers] == [200] * USER_RATE + [429] * 2
    for answer in answers[USER_RATE:]:
        assert_throttled(answer)
    assert list(redis_client.scan_iter(match=f"{cache_prefix}:*throttle_user_*"))


def test_processes_at_once_together_get_exactly_the_rate(
    server: Server, cache_prefix: str
) -> None:
    # given two processes sending 2 * rate requests at the same moment (a throttle
    # that reads the history and writes it back later lets both through)
    answers = run_at_once(server, cache_prefix, [USER_RATE, USER_RATE])

    # then exactly the rate is answered, and every other request is throttled
    statuses = [a["status"] for a in answers]
    assert statuses.count(200) == USER_RATE
    for answer in answers:
        if answer["status"] != 200:
            assert_throttled(answer)
