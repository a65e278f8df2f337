"""Run a prepared turn against the provider, outside any database transaction.

`stream_turn` is an async generator of events. Whatever ends it (the answer is
complete, the provider fails, or the consumer stops because the client left) it
settles the turn exactly once: a complete answer is charged in full, a failure is
charged nothing, and a dropped stream is charged for the text that was handed to
the client before it left. A delta counts as delivered once the consumer comes
back for the next event, which it does only after sending the previous one.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing, suppress
from dataclasses import dataclass

from asgiref.sync import sync_to_async

from chat.exceptions import ProviderError
from chat.providers import Provider, ProviderUsage, StreamCut
from chat.services import (
    PreparedTurn,
    TurnResult,
    fail_turn,
    release_unstarted_turn,
    settle_turn,
)
from common import metrics
from common.errors import ServiceError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finished:
    result: TurnResult


@dataclass(frozen=True)
class Failed:
    error: ServiceError


TurnEvent = Delta | Finished | Failed


async def _shielded(work: Awaitable) -> object:
    # Settlement must finish even if the request task is cancelled meanwhile.
    return await asyncio.shield(work)


async def _settle_dropped(turn: PreparedTurn, delivered: list[str]) -> None:
    if not delivered:
        await _shielded(sync_to_async(release_unstarted_turn)(turn))
        return
    # A `ServiceError` here was settled and logged by `settle_turn`, and nobody is
    # left to tell.
    with suppress(ServiceError):
        await _shielded(
            sync_to_async(settle_turn)(
                turn, text="".join(delivered), usage=None, delivered_in_full=False
            )
        )


async def stream_turn(
    turn: PreparedTurn, provider: Provider
) -> AsyncIterator[TurnEvent]:
    """Yield the turn's deltas, each delivered as it comes, then `Finished` or
    `Failed`. A JSON answer is `complete_turn`'s."""
    delivered: list[str] = []
    usage: ProviderUsage | None = None
    cut = False
    asked = time.perf_counter()
    events = provider.stream(
        messages=turn.messages,
        model=turn.model,
        max_tokens=turn.completion_limit,
        **turn.request.options,
    )
    try:
        async with aclosing(events):
            async for event in events:
                if isinstance(event, ProviderUsage):
                    usage = event
                    continue
                if isinstance(event, StreamCut):
                    cut = True
                    continue
                if not delivered:
                    metrics.observe_first_token(
                        model=turn.model, seconds=time.perf_counter() - asked
                    )
                yield Delta(event)
                delivered.append(event)
    except ProviderError as error:
        yield await _fail(turn, error)
        return
    except (GeneratorExit, asyncio.CancelledError):
        await _settle_dropped(turn, delivered)
        raise
    except Exception:
        # A provider that fails in a way it does not report is still a provider
        # that failed: logged with its traceback, released, answered 502.
        logger.exception("Provider %s failed unexpectedly.", provider.name)
        yield await _fail(turn, ProviderError())
        return
    metrics.observe_answer(model=turn.model, seconds=time.perf_counter() - asked)
    yield await _settle(
        turn,
        text="".join(delivered),
        usage=usage,
        delivered_in_full=not cut,
        reached_client=True,
    )


async def _settle(
    turn: PreparedTurn,
    *,
    text: str,
    usage: ProviderUsage | None,
    delivered_in_full: bool,
    reached_client: bool,
) -> Finished | Failed:
    """Settle a turn whose answer ended, whether or not it was finished."""
    try:
        result = await _shielded(
            sync_to_async(settle_turn)(
                turn,
                text=text,
                usage=usage,
                delivered_in_full=delivered_in_full,
                reached_client=reached_client,
            )
        )
    except ServiceError as error:
        return Failed(error)
    return Finished(result)


async def _fail(turn: PreparedTurn, error: ProviderError) -> Failed:
    await _shielded(sync_to_async(fail_turn)(turn, error))
    return Failed(error)


async def start_stream(
    turn: PreparedTurn, provider: Provider
) -> tuple[TurnEvent, AsyncIterator[TurnEvent]]:
    """Start a streamed turn and wait for its first event.

    Response headers go out with the first byte, so waiting lets a failure before
    any output still be answered as a plain error with its own status. When the
    first event is `Failed`, the stream is already closed.
    """
    events = stream_turn(turn, provider)
    try:
        first = await anext(events)
    except BaseException:
        await events.aclose()
        raise
    if isinstance(first, Failed):
        await events.aclose()
    return first, events


async def complete_turn(turn: PreparedTurn, provider: Provider) -> Finished | Failed:
    """Ask for the whole answer at once, then settle the turn as `stream_turn` does.

    Nothing reaches the client before the end, so a client that leaves meanwhile
    was delivered nothing, and the hold is released.
    """
    asked = time.perf_counter()
    try:
        completion = await provider.complete(
            messages=turn.messages,
            model=turn.model,
            max_tokens=turn.completion_limit,
            **turn.request.options,
        )
    except ProviderError as error:
        return await _fail(turn, error)
    except asyncio.CancelledError:
        await _settle_dropped(turn, [])
        raise
    except Exception:
        logger.exception("Provider %s failed unexpectedly.", provider.name)
        return await _fail(turn, ProviderError())
    seconds = time.perf_counter() - asked
    if completion.text:
        # The first piece of the answer arrived with the rest of it.
        metrics.observe_first_token(model=turn.model, seconds=seconds)
    metrics.observe_answer(model=turn.model, seconds=seconds)
    return await _settle(
        turn,
        text=completion.text,
        usage=completion.usage,
        delivered_in_full=completion.finish_reason is not None,
        reached_client=False,
    )
