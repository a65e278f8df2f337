"""HTTP to an OpenAI-compatible endpoint, without its SDK.

One pooled `httpx.AsyncClient` per event loop; a request retried only before any
byte of the answer arrived; server-sent events read from bytes by a parser of
our own. What the chunks mean is `chat.providers`' business.
"""

import asyncio
import email.utils
import logging
import random
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from django.conf import settings

from chat.exceptions import ProviderError

logger = logging.getLogger(__name__)

# The statuses the openai SDK retried, besides every 5xx; and its backoff.
RETRY_STATUSES = frozenset({408, 409, 429})
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
# A longer `Retry-After` than this is a refusal, not a hint: it is not waited out.
MAX_RETRY_AFTER = 60.0
# Error bodies are logged for the operator, this much of them.
LOGGED_ERROR_CHARS = 500
CHAT_COMPLETIONS = "chat/completions"
# An idle pooled connection is dropped after this long. Uvicorn, and with it vLLM,
# closes one after 5 s, httpx's own default: at equal timeouts a turn could take
# a connection the server was closing that instant, and fail before any answer.
KEEPALIVE_SECONDS = 4.0

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = (
    weakref.WeakKeyDictionary()
)


def _client() -> httpx.AsyncClient:
    """Return this event loop's client for the configured endpoint.

    Building a client costs about 20 ms (its TLS context) and a new connection per
    turn; one client per loop keeps both off the time to the first token. A client
    is bound to the loop it was made on, hence the key.
    """
    config = (settings.LLM_BASE_URL, settings.LLM_API_KEY, settings.LLM_TIMEOUT)
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    if config not in per_loop:
        base_url, api_key, timeout = config
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        per_loop[config] = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            # The SDK's limits and redirects, so that only the overhead changes.
            limits=httpx.Limits(
                max_connections=1000,
                max_keepalive_connections=100,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
            follow_redirects=True,
        )
    return per_loop[config]


def _retry_after(response: httpx.Response) -> float | None:
    """Return the delay the server asked for, in seconds, if it asked."""
    headers = response.headers
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        moment = email.utils.parsedate_tz(value)
        return None if moment is None else email.utils.mktime_tz(moment) - time.time()


def _retry_delay(response: httpx.Response | None, attempt: int) -> float | None:
    """Return how long to wait before trying again, or None not to try again.

    `response` is None when no answer came (a connection error or a timeout).
    The rules are the openai SDK's, so that operators see the same behaviour.
    """
    asked = None if response is None else _retry_after(response)
    if response is not None:
        if asked is not None and asked > MAX_RETRY_AFTER:
            return None
        should_retry = response.headers.get("x-should-retry")
        if should_retry == "false" or (
            should_retry != "true"
            and response.status_code not in RETRY_STATUSES
            and response.status_code < 500
        ):
            return None
    if asked is not None and 0 < asked <= MAX_RETRY_AFTER:
        return asked
    backoff = min(INITIAL_RETRY_DELAY * 2**attempt, MAX_RETRY_DELAY)
    return backoff * (1 - 0.25 * random.random())


async def _refuse(response: httpx.Response) -> ProviderError:
    """Close an error response; return its error, its body logged."""
    try:
        await response.aread()
        detail = response.text[:LOGGED_ERROR_CHARS]
    except httpx.HTTPError:
        detail = ""
    finally:
        await response.aclose()
    logger.warning("The model endpoint answered %s: %s", response.status_code, detail)
    return ProviderError(upstream_status=response.status_code)


async def _send(body: bytes) -> httpx.Response:
    """Post a chat completion; return the response as soon as its status is good.

    Connection errors, timeouts and retryable statuses are tried again up to
    `LLM_MAX_RETRIES` times: all before the response's body is read, so an
    answer is never asked for twice once any of it arrived.
    """
    client = _client()
    retries = settings.LLM_MAX_RETRIES
    attempt = 0
    while True:
        request = client.build_request("POST", CHAT_COMPLETIONS, content=body)
        try:
            response = await client.send(request, stream=True)
        except httpx.TransportError:
            if attempt == retries:
                raise
            delay = _retry_delay(None, attempt)
        else:
            if not response.is_error:
                return response
            delay = None if attempt == retries else _retry_delay(response, attempt)
            if delay is None:
                raise await _refuse(response)
            await response.aclose()
        await asyncio.sleep(delay)
        attempt += 1


@asynccontextmanager
async def chat_completion(body: bytes) -> AsyncIterator[httpx.Response]:
    """Post a chat completion (a JSON body) and close its response afterwards.

    Raises `ProviderError` for an error status, and httpx's errors as they come.
    """
    response = await _send(body)
    try:
        yield response
    finally:
        await response.aclose()


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield the data of each server-sent event: its `data` lines joined by LF.

    Lines end at CR, LF or CRLF (and nowhere else: U+2028 inside a JSON string
    is text). Comments, keep-alives and other fields are skipped; an event
    without data, or one the stream ends before its blank line, is not
    dispatched, as the SSE specification says.
    """
    pending = b""
    data: list[bytes] = []
    async for chunk in chunks:
        lines = (pending + chunk).splitlines(keepends=True)
        # The last line may be unfinished, or a CR whose LF is still to come.
        pending = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
                continue
            name, _, value = line.partition(b":")
            if name == b"data":
                data.append(value[1:] if value.startswith(b" ") else value)
    # A CR held back at the very end was a blank line after all: it ends the event.
    if pending == b"\r" and data:
        yield b"\n".join(data)
