"""The app's Prometheus metrics, and `/metrics`, which exposes them.

Counters and histograms live in each process. With `PROMETHEUS_MULTIPROC_DIR`
set (several uvicorn workers), prometheus_client writes every process's values
to files there and a scrape adds them up (`MultiProcessCollector`). Figures read
from the database (holds, orders) are collectors passed to the view by the
URLconf and run in the scraping process only. No metric has a per-user label.
"""

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Iterator
from enum import StrEnum
from types import MethodType

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django_prometheus import middleware as django_prometheus
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector


class Endpoint(StrEnum):
    """Where a chat turn came in."""

    API_CHAT = "api_chat"
    V1 = "v1"
    PAGE = "page"


class TurnOutcome(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    FAILED = "failed"
    REFUSED = "refused"
    # The client left before the first piece of the answer: released, no charge.
    ABANDONED = "abandoned"


TURNS = Counter(
    "eora_chat_turns",
    "Chat turns by how they ended and where they came in.",
    ["endpoint", "outcome"],
)
BILLED_TOKENS = Counter(
    "eora_chat_billed_tokens",
    "Tokens on chat_usage ledger rows, by model and kind (prompt or completion).",
    ["model", "kind"],
)
POINTS_CHARGED = Counter(
    "eora_chat_points_charged",
    "Points charged for chat turns, by model.",
    ["model"],
)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, float("inf"))
PROVIDER_LATENCY = Histogram(
    "eora_chat_provider_latency_seconds",
    "Time from asking the model to the end of its whole answer, by model.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "eora_chat_time_to_first_token_seconds",
    "Time from asking the model to the first piece of its answer, by model.",
    ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, float("inf")),
)


def count_turn(*, endpoint: str, outcome: TurnOutcome) -> None:
    TURNS.labels(endpoint=endpoint, outcome=outcome).inc()


def count_charge(
    *, model: str, prompt_tokens: int, completion_tokens: int, points: int
) -> None:
    """Count a chat_usage ledger row: its tokens and the points it charged."""
    BILLED_TOKENS.labels(model=model, kind="prompt").inc(prompt_tokens)
    BILLED_TOKENS.labels(model=model, kind="completion").inc(completion_tokens)
    POINTS_CHARGED.labels(model=model).inc(points)


def observe_first_token(*, model: str, seconds: float) -> None:
    TIME_TO_FIRST_TOKEN.labels(model=model).observe(seconds)


def observe_answer(*, model: str, seconds: float) -> None:
    PROVIDER_LATENCY.labels(model=model).observe(seconds)


# Exposition ------------------------------------------------------------------------


class _ProcessMetrics:
    """This process's default registry, as a collector of another registry."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def exposition(collectors: Iterable[Collector] = ()) -> bytes:
    """Return the text format of every process's metrics plus `collectors`'."""
    registry = CollectorRegistry()
    if settings.PROMETHEUS_MULTIPROC_DIR:
        MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        registry.register(_ProcessMetrics())
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)


def _address_allowed(request: HttpRequest) -> bool:
    allowed = settings.METRICS_ALLOWED_IPS
    if not allowed:
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowed)


def _bearer_token_matches(request: HttpRequest) -> bool:
    scheme, _space, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), settings.METRICS_TOKEN.encode())


def metrics_view(
    request: HttpRequest, collectors: Iterable[Collector] = ()
) -> HttpResponse:
    """Serve the metrics to a scraper holding `METRICS_TOKEN`.

    Without the setting, or from an address outside `METRICS_ALLOWED_IPS`, the
    URL does not exist (404); a missing or wrong token is 401.
    """
    if not settings.METRICS_TOKEN or not _address_allowed(request):
        raise Http404()
    if not _bearer_token_matches(request):
        return HttpResponse(
            status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'}
        )
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    return HttpResponse(exposition(collectors), content_type=CONTENT_TYPE_LATEST)


# django-prometheus's middleware, on the event loop ------------------------------


class _NonBlocking:
    """Run a MiddlewareMixin's hooks where the request is, under ASGI too.

    Django runs a MiddlewareMixin's `process_*` hooks in a thread under ASGI;
    django-prometheus's only increment counters, so they run on the event loop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        super().__init__(get_response)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)
            # Django awaits a coroutine hook as it is, and names it by __self__.
            for name in ("process_view", "process_template_response"):
                if hasattr(self, name):
                    hook = _on_the_loop(getattr(type(self), name))
                    setattr(self, name, MethodType(hook, self))

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


def _on_the_loop(hook: Callable[..., object]) -> Callable[..., Awaitable[object]]:
    async def run(self: object, *args: object) -> object:
        return hook(self, *args)

    return run


class PrometheusBeforeMiddleware(
    _NonBlocking, django_prometheus.PrometheusBeforeMiddleware
):
    pass


class PrometheusAfterMiddleware(
    _NonBlocking, django_prometheus.PrometheusAfterMiddleware
):
    pass
