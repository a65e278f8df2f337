"""POST /api/chat: one metered chat turn, as JSON or as server-sent events."""

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers

from accounts.api_auth import authenticate
from chat.providers import get_provider
from chat.services import PreparedTurn, TurnRequest, TurnResult, prepare_turn
from chat.streaming import (
    Delta,
    Failed,
    Finished,
    TurnEvent,
    complete_turn,
    start_stream,
)
from common.api import StrictBooleanField, StrictCharField, first_error
from common.errors import ServiceError
from common.http import InvalidRequest, json_object
from common.metrics import Endpoint
from common.rendering import error_response, sse_error, sse_event
from points.services import MAX_IDEMPOTENCY_KEY_LENGTH


class MethodNotAllowed(ServiceError):
    code = "method_not_allowed"
    status_code = 405
    default_message = _("Method not allowed.")


def points_info(result: TurnResult) -> dict[str, Any]:
    return {
        "deducted": result.points_charged,
        "remaining": result.remaining,
        "token_usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.total_tokens,
        },
        # The price before the tier discount, and the tier (null without one).
        "list_cost": (
            result.points_charged if result.list_cost is None else result.list_cost
        ),
        "tier": result.tier,
    }


def result_body(result: TurnResult) -> dict[str, Any]:
    return {
        "success": True,
        "response": result.text,
        "session_id": str(result.conversation_id) if result.conversation_id else None,
        "model": result.model,
        "status": result.status,
        "points_info": points_info(result),
    }


def idempotency_key_of(request: HttpRequest) -> str | None:
    """Return the request's Idempotency-Key; an empty header is no key."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidRequest(
            _("Idempotency-Key must be at most %(limit)d characters.")
            % {"limit": MAX_IDEMPOTENCY_KEY_LENGTH}
        )
    return key


class SessionIdField(serializers.Field):
    """A conversation id as a string (an integer is taken as its text), or null."""

    default_error_messages = {"invalid": _("session_id must be a string.")}

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, str | int):
            self.fail("invalid")
        return str(data)

    def to_representation(self, value: Any) -> Any:
        return value


class MessageField(serializers.Field):
    """The message as sent: blank, over-long or unstorable text is the turn's to
    refuse, each with its own code (`chat.services`)."""

    default_error_messages = {"invalid": _("message is required and must be a string.")}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class ChatInputSerializer(serializers.Serializer):
    session_id = SessionIdField(required=False, allow_null=True)
    message = MessageField()
    model = StrictCharField(required=False, allow_null=True)
    stream = StrictBooleanField(required=False)


def parse_chat_request(body: dict[str, Any], request: HttpRequest, user) -> TurnRequest:
    payload = ChatInputSerializer(data=body)
    if not payload.is_valid():
        field, message = first_error(payload.errors)
        raise InvalidRequest(f"{field}: {message}" if field else message)
    data = payload.validated_data
    return TurnRequest(
        user=user,
        message=data["message"],
        model=data.get("model"),
        conversation_id=data.get("session_id") or None,
        idempotency_key=idempotency_key_of(request),
        api_key=getattr(request, "auth", None),
        endpoint=Endpoint.API_CHAT,
    )


def wants_stream(body: dict[str, Any], request: HttpRequest) -> bool:
    if "stream" in body:
        return body["stream"]
    return "text/event-stream" in request.headers.get("Accept", "")


def server_timing(timings: dict[str, float]) -> str:
    return ", ".join(
        f"{name};dur={seconds * 1000:.2f}" for name, seconds in timings.items()
    )


def sse_for(event: TurnEvent, turn: PreparedTurn) -> bytes:
    if isinstance(event, Delta):
        return sse_event("delta", {"text": event.text})
    if isinstance(event, Finished):
        return sse_event(
            "done",
            {**result_body(event.result), "timing": server_timing(turn.timings)},
        )
    return sse_error(event.error)


@csrf_exempt  # CSRF is enforced in `authenticate` for session-authenticated calls.
async def chat(request: HttpRequest) -> HttpResponse:
    try:
        if request.method != "POST":
            raise MethodNotAllowed()
        prepared, streaming = await sync_to_async(_admitted_turn)(request)
    except ServiceError as error:
        return error_response(error)
    if isinstance(prepared, TurnResult):
        return _replayed(prepared, streaming)
    if streaming and isinstance(request, ASGIRequest):
        return await _streaming_response(prepared)
    response = await _json_response(prepared)
    if streaming and response.status_code == 200:
        # A WSGI server would buffer a stream anyway: send the events at once.
        return _as_events(json.loads(response.content), response)
    return response


def _admitted_turn(request: HttpRequest) -> tuple[PreparedTurn | TurnResult, bool]:
    """Authenticate, throttle, read the body and hold the points, in one thread."""
    user = authenticate(request)
    body = json_object(request)
    turn_request = parse_chat_request(body, request, user)
    return prepare_turn(turn_request), wants_stream(body, request)


def _replayed(result: TurnResult, streaming: bool) -> HttpResponse:
    response = JsonResponse(result_body(result))
    return _as_events(result_body(result), response) if streaming else response


def _as_events(body: dict[str, Any], source: HttpResponse) -> HttpResponse:
    events = sse_event("delta", {"text": body["response"]}) + sse_event("done", body)
    response = HttpResponse(events, content_type="text/event-stream")
    if "Server-Timing" in source:
        response["Server-Timing"] = source["Server-Timing"]
    return response


async def _json_response(turn: PreparedTurn) -> HttpResponse:
    started = time.perf_counter()
    outcome = await complete_turn(turn, get_provider())
    if isinstance(outcome, Failed):
        return error_response(outcome.error)
    turn.timings["model"] = time.perf_counter() - started - turn.timings["settle"]
    response = JsonResponse(result_body(outcome.result))
    response["Server-Timing"] = server_timing(turn.timings)
    return response


async def _streaming_response(turn: PreparedTurn) -> HttpResponse:
    first, events = await start_stream(turn, get_provider())
    if isinstance(first, Failed):
        return error_response(first.error)

    async def body() -> AsyncIterator[bytes]:
        async with aclosing(events):
            event = first
            while True:
                yield sse_for(event, turn)
                if not isinstance(event, Delta):
                    return
                event = await anext(events)

    response = StreamingHttpResponse(body(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    response["Server-Timing"] = server_timing(turn.timings)
    return response
