"""The metered gateway against the upstream directly and an unmetered LiteLLM proxy.

Three targets serve the same OpenAI chat completions in front of one fake upstream
(`bench.upstream`: 20 chunks 10 ms apart, 200 ms for a JSON answer):

    upstream   the upstream itself: the baseline of every "added" figure
    EORA       our `/v1` (uvicorn, 2 workers, PostgreSQL, Redis throttles), the
               `openai` provider pointed at the upstream, API keys of funded users
    LiteLLM    LiteLLM's proxy (2 workers, no database, so no budgets), installed
               into its own virtual environment (BENCH_LITELLM_VENV, default
               .bench/litellm-venv); when it cannot be installed the benchmark
               says so and compares with the upstream alone

Each round measures every target in turn (the order rotates by round): time to
the first content token of a streamed answer at 1 client, with a 1-message and a
50-message conversation; a JSON answer at 1 client; then throughput with 32
clients at once, JSON and streamed (EORA with one key for all and with a key
each). Figures are medians over the rounds with their spread (min-max of the
rounds' medians); "added" is a target's figure less the upstream's in the same
round; p99 is over all rounds' samples. Memory is the resident size of each
server's processes after the load.

    .venv/bin/python -m bench.gateway [--rounds 5] [--samples 60] [--seconds 5]
"""

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import POSTGRES_URL, percentile, print_table
from tests.live_server import ROOT, free_port, live_server

MODEL = "bench-model"
CLIENTS = 32
WORKERS = 2
PASSWORD = "bench-password-not-a-secret"
LITELLM_SPEC = "litellm[proxy]"
DEFAULT_VENV = ROOT / ".bench" / "litellm-venv"
SHORT = [{"role": "user", "content": "How are the points of a chat turn charged?"}]
LONG = [
    {
        "role": "user" if index % 2 == 0 else "assistant",
        "content": f"Message {index} of a long conversation about metered tokens, "
        "holds, settlements and the ledger that keeps them exact.",
    }
    for index in range(49)
] + SHORT
EORA_SETTINGS = {
    "LLM_PROVIDER": "openai",
    "LLM_MODELS": MODEL,
    "LLM_API_KEY": "unused",
    "LLM_MAX_RETRIES": "0",
    "API_THROTTLE_USER": "1000000/min",
    "API_THROTTLE_KEY": "1000000/min",
    "REDIS_URL": "redis://127.0.0.1:6379/7",
}


@dataclass(frozen=True)
class Target:
    name: str
    url: str  # ends with /v1
    keys: list[str]
    pids: Callable[[], list[int]]


# Servers -------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    """Return pid and every process below it (from /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children[int(fields[1])].append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def resident_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _wait_for(url: str, process: subprocess.Popen, log: Path, seconds: int) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer:\n{log.read_text()[-3000:]}")


@contextmanager
def _process(command: list[str], log: Path, env: dict[str, str]) -> Iterator:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def upstream(data_dir: Path) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "bench.upstream:app", "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with _process(command, data_dir / "upstream.log", dict(os.environ)) as process:
        url = f"http://127.0.0.1:{port}/v1"
        _wait_for(f"{url}/models", process, data_dir / "upstream.log", 30)
        yield url


def litellm_python(venv: Path) -> tuple[Path | None, str]:
    """Return LiteLLM's interpreter, installing it first if needed; or why not."""
    python = venv / "bin" / "python"
    if (venv / "bin" / "litellm").exists():
        return python, "installed before"
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", LITELLM_SPEC],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        return None, f"could not be installed: {detail.strip()[-500:]}"
    return python, "installed now"


@contextmanager
def litellm(venv: Path, upstream_url: str, data_dir: Path) -> Iterator[Target]:
    config = data_dir / "litellm.yaml"
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {
                            "model": f"openai/{MODEL}",
                            "api_base": upstream_url,
                            "api_key": "unused",
                        },
                    }
                ],
                "litellm_settings": {"drop_params": True},
            }
        )
    )
    port = free_port()
    # Without a database, the master key is the proxy's one key: a string compare.
    master_key = "sk-" + secrets.token_hex(32)
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": master_key,
        "LITELLM_LOG": "ERROR",
        # Its price list is fetched from the internet at start unless told not to.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "DISABLE_ADMIN_UI": "True",
    }
    env.pop("DATABASE_URL", None)
    command = [
        str(venv / "bin" / "litellm"), "--config", str(config), "--host",
        "127.0.0.1", "--port", str(port), "--num_workers", str(WORKERS),
    ]  # fmt: skip
    log = data_dir / "litellm.log"
    with _process(command, log, env) as process:
        _wait_for(f"http://127.0.0.1:{port}/health/liveliness", process, log, 300)
        yield Target(
            "LiteLLM",
            f"http://127.0.0.1:{port}/v1",
            [master_key],
            lambda: _descendants(process.pid),
        )


@contextmanager
def eora(upstream_url: str, data_dir: Path) -> Iterator[Target]:
    with live_server(
        data_dir,
        postgres=POSTGRES_URL,
        database_prefix="bench_gateway_",
        workers=WORKERS,
        LLM_BASE_URL=upstream_url,
        **EORA_SETTINGS,
    ) as server:
        emails = [f"client{index}@bench.example" for index in range(CLIENTS)]
        secrets = server.add_users(emails, PASSWORD, top_up=10**12)
        pid = _server_pid(server.url)
        yield Target(
            "EORA",
            f"{server.url}/v1",
            [secrets[email] for email in emails],
            lambda: _descendants(pid),
        )


def _server_pid(base_url: str) -> int:
    """Return the pid of the uvicorn supervisor listening on base_url's port."""
    port = base_url.rsplit(":", 1)[1]
    listening = subprocess.run(
        ["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True
    ).stdout
    pid = int(listening.split("pid=")[1].split(",")[0])
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return parent if parent > 1 else pid


# Clients -------------------------------------------------------------------------


def _body(messages: list[dict], stream: bool) -> dict:
    body = {"model": MODEL, "messages": messages, "max_tokens": 64}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def first_token_ms(client: httpx.Client, target: Target, messages: list) -> float:
    """Return the time to the first content delta of a streamed answer (read whole)."""
    headers = {"Authorization": f"Bearer {target.keys[0]}"}
    started = time.perf_counter()
    first = None
    with client.stream(
        "POST",
        f"{target.url}/chat/completions",
        json=_body(messages, True),
        headers=headers,
    ) as response:
        if response.status_code != 200:
            raise RuntimeError(
                f"{target.name}: {response.status_code} {response.read()}"
            )
        for line in response.iter_lines():
            if first is None and line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    first = time.perf_counter()
    if first is None:
        raise RuntimeError(f"{target.name}: no content in the stream")
    return (first - started) * 1000


def json_ms(client: httpx.Client, target: Target) -> float:
    headers = {"Authorization": f"Bearer {target.keys[0]}"}
    started = time.perf_counter()
    response = client.post(
        f"{target.url}/chat/completions", json=_body(SHORT, False), headers=headers
    )
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or not response.json()["choices"]:
        raise RuntimeError(f"{target.name}: {response.status_code} {response.text}")
    return elapsed


async def _load(target: Target, keys: list[str], stream: bool, seconds: float) -> float:
    """Return answers per second with CLIENTS clients at once for `seconds`."""
    body = json.dumps(_body(SHORT, stream)).encode()
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    done = 0
    errors: Counter[str] = Counter()
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        deadline = time.perf_counter() + seconds

        async def one(index: int) -> None:
            nonlocal done
            headers = {
                "Authorization": f"Bearer {keys[index % len(keys)]}",
                "Content-Type": "application/json",
            }
            while time.perf_counter() < deadline:
                async with client.stream(
                    "POST", f"{target.url}/chat/completions", content=body,
                    headers=headers,
                ) as response:  # fmt: skip
                    answer = b"".join([part async for part in response.aiter_raw()])
                if response.status_code == 200:
                    done += 1
                else:
                    errors[f"{response.status_code} {answer[:300]!r}"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(index) for index in range(CLIENTS)))
        elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(
            f"{target.name}: {errors.total()} answers were not 200: {dict(errors)}"
        )
    return done / elapsed


# Rounds --------------------------------------------------------------------------


def measure_round(
    targets: list[Target], samples: int, seconds: float, round_index: int
) -> dict[tuple[str, str], list[float]]:
    """Measure every target once; return samples keyed by (target, figure)."""
    found: dict[tuple[str, str], list[float]] = defaultdict(list)
    shift = round_index % len(targets)
    order = targets[shift:] + targets[:shift]
    with httpx.Client(timeout=60) as client:
        for target in order:
            for _ in range(3):  # warm the connection and the server's caches
                first_token_ms(client, target, SHORT)
            found[(target.name, "ttft")] = [
                first_token_ms(client, target, SHORT) for _ in range(samples)
            ]
            found[(target.name, "ttft50")] = [
                first_token_ms(client, target, LONG) for _ in range(samples)
            ]
            found[(target.name, "json")] = [
                json_ms(client, target) for _ in range(max(10, samples // 2))
            ]
    for target in order:
        variants = [("", target.keys[:1])]
        if len(target.keys) > 1:
            variants = [(" 1 key", target.keys[:1]), (" 32 keys", target.keys)]
        for suffix, keys in variants:
            for stream, figure in ((False, "json rps"), (True, "stream rps")):
                rate = asyncio.run(_load(target, keys, stream, seconds))
                found[(target.name + suffix, figure)] = [rate]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=60, help="per figure and round")
    parser.add_argument("--seconds", type=float, default=5, help="per throughput run")
    parser.add_argument(
        "--no-litellm", action="store_true", help="compare with the upstream only"
    )
    args = parser.parse_args()
    venv = Path(os.environ.get("BENCH_LITELLM_VENV") or DEFAULT_VENV)
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        upstream_url = stack.enter_context(upstream(data_dir))
        targets = [Target("upstream", upstream_url, ["unused"], lambda: [])]
        targets.append(stack.enter_context(eora(upstream_url, data_dir)))
        litellm_note = "not asked for (--no-litellm)"
        if not args.no_litellm:
            python, litellm_note = litellm_python(venv)
            if python is not None:
                targets.append(
                    stack.enter_context(litellm(venv, upstream_url, data_dir))
                )
        rounds = [
            measure_round(targets, args.samples, args.seconds, index)
            for index in range(args.rounds)
        ]
        memory = {
            t.name: resident_mib(t.pids()) for t in targets if t.name != "upstream"
        }
    report(targets, rounds, memory, litellm_note, args)


def _spread(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def report(
    targets: list[Target],
    rounds: list[dict[tuple[str, str], list[float]]],
    memory: dict[str, float],
    litellm_note: str,
    args: argparse.Namespace,
) -> None:
    names = [t.name for t in targets if t.name != "upstream"]
    print(
        f"{args.rounds} interleaved rounds; {args.samples} streamed samples per"
        f" figure and round; {CLIENTS} clients for {args.seconds:g} s per throughput"
        f" run; servers with {WORKERS} workers. LiteLLM: {litellm_note}.\n"
    )
    rows = []
    for figure, label in (
        ("ttft", "first token, 1 message"),
        ("ttft50", "first token, 50 messages"),
        ("json", "JSON answer"),
    ):
        base = [statistics.median(r[("upstream", figure)]) for r in rounds]
        rows.append((label, "upstream", statistics.median(base), _spread(base), "", ""))
        for name in names:
            added = [
                statistics.median(r[(name, figure)])
                - statistics.median(r[("upstream", figure)])
                for r in rounds
            ]
            pooled = [s for r in rounds for s in r[(name, figure)]]
            base_pooled = [s for r in rounds for s in r[("upstream", figure)]]
            p99_added = percentile(pooled, 0.99) - percentile(base_pooled, 0.99)
            rows.append(
                (
                    label,
                    f"{name} added",
                    statistics.median(added),
                    _spread(added),
                    p99_added,
                    p99_added / statistics.median(added)
                    if statistics.median(added) > 0
                    else float("nan"),
                )
            )
    print("Latency, 1 client (ms; added = the target less the upstream, same round)")
    print_table(["figure", "target", "p50", "spread", "p99 added", "p99/p50"], rows)
    rows = []
    throughput_names = sorted({key[0] for r in rounds for key in r if "rps" in key[1]})
    for figure in ("json rps", "stream rps"):
        upstream_rate = statistics.median(r[("upstream", figure)][0] for r in rounds)
        for name in throughput_names:
            rates = [r[(name, figure)][0] for r in rounds]
            rows.append(
                (
                    figure.replace(" rps", ""),
                    name,
                    statistics.median(rates),
                    _spread(rates),
                    statistics.median(rates) / upstream_rate,
                )
            )
    print(f"Throughput, {CLIENTS} clients (answers per second)")
    print_table(["answer", "target", "median/s", "spread", "x upstream"], rows)
    if "LiteLLM" in names and "EORA" in names:
        print("EORA / LiteLLM")
        ratio_rows = []
        for figure, label in (
            ("ttft", "added first token"),
            ("ttft50", "added first token, 50 messages"),
            ("json", "added JSON time"),
        ):
            ours, theirs = (
                statistics.median(
                    statistics.median(r[(n, figure)])
                    - statistics.median(r[("upstream", figure)])
                    for r in rounds
                )
                for n in ("EORA", "LiteLLM")
            )
            ratio_rows.append((label, ours, theirs, ours / theirs if theirs else 0.0))
        for figure in ("json rps", "stream rps"):
            theirs = statistics.median(r[("LiteLLM", figure)][0] for r in rounds)
            for name in ("EORA 1 key", "EORA 32 keys"):
                ours = statistics.median(r[(name, figure)][0] for r in rounds)
                ratio_rows.append((f"{figure}, {name}", ours, theirs, ours / theirs))
        ratio_rows.append(
            ("memory MiB", memory["EORA"], memory["LiteLLM"],
             memory["EORA"] / memory["LiteLLM"])
        )  # fmt: skip
        print_table(["figure", "EORA", "LiteLLM", "EORA/LiteLLM"], ratio_rows)
    else:
        print(f"Memory after the load (MiB): {memory}")


if __name__ == "__main__":
    main()
