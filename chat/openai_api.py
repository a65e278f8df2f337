"""An OpenAI-compatible, points-metered endpoint: /v1/chat/completions, /v1/models.

Any OpenAI client works with an EORA API key as its `api_key` and our `/v1` as its
`base_url`. Every call is one chat turn through `chat.services` (the same holds,
metering and settlement as /api/chat); nothing is stored as a conversation unless
the request says `"store": true`.
"""

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers

from accounts.api_auth import authenticate
from chat.api import idempotency_key_of
from chat.providers import get_provider
from chat.services import PreparedTurn, TurnRequest, TurnResult, prepare_turn
from chat.streaming import Delta, Failed, complete_turn, start_stream
from common.api import (
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    first_error,
)
from common.errors import ServiceError
from common.http import json_object
from common.metrics import Endpoint
from common.rendering import openai_error_chunk, openai_error_response

ROLES = {"system", "developer", "user", "assistant"}
# Fields whose effect we pass to the provider as they are.
SAMPLING_FIELDS = {
    "temperature",
    "top_p",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
}
# Fields we can ignore without changing the answer.
IGNORED_FIELDS = {
    "user",
    "metadata",
    "service_tier",
    "parallel_tool_calls",
    "logit_bias",
}
# Fields we cannot honour; ignoring them would change the answer.
UNSUPPORTED_FIELDS = {
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
    "logprobs",
    "top_logprobs",
    "audio",
    "modalities",
    "prediction",
}


class OpenAIRequestError(ServiceError):
    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


class TextContentField(serializers.Field):
    """A message's content: a string, or a list of `{"type": "text", "text"}`."""

    default_error_messages = {
        "invalid": _("Message content must be a string or a list of text parts."),
        "part": _("Only text content parts with a string `text` are supported."),
    }

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, str):
            return data
        if not isinstance(data, list):
            self.fail("invalid")
        for part in data:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                self.fail("part")
        return "".join(part["text"] for part in data)

    def to_representation(self, value: Any) -> Any:
        return value


class StopField(serializers.Field):
    """`stop`: a string, or a list of at most four strings."""

    default_error_messages = {
        "invalid": _("`stop` must be a string or a list of at most 4 strings.")
    }

    def to_internal_value(self, data: Any) -> str | list[str]:
        if isinstance(data, str):
            return data
        if (
            isinstance(data, list)
            and len(data) <= 4
            and all(isinstance(item, str) for item in data)
        ):
            return data
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=sorted(ROLES))
    content = TextContentField()

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict) and not isinstance(data.get("role"), str):
            raise serializers.ValidationError(
                {
                    "role": [
                        _("Each message needs a role: %(roles)s.")
                        % {"roles": ", ".join(sorted(ROLES))}
                    ]
                }
            )
        return super().to_internal_value(data)


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = StrictBooleanField(required=False, default=False)


class CompletionInputSerializer(serializers.Serializer):
    model = StrictCharField()
    messages = MessageSerializer(many=True, allow_empty=False)
    max_completion_tokens = StrictIntegerField(
        min_value=1, required=False, allow_null=True
    )
    max_tokens = StrictIntegerField(min_value=1, required=False, allow_null=True)
    n = StrictIntegerField(min_value=1, max_value=1, required=False, allow_null=True)
    stream = StrictBooleanField(required=False, default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    store = StrictBooleanField(required=False, default=False)
    temperature = StrictFloatField(
        min_value=0, max_value=2, required=False, allow_null=True
    )
    top_p = StrictFloatField(min_value=0, max_value=1, required=False, allow_null=True)
    stop = StopField(required=False, allow_null=True)
    presence_penalty = StrictFloatField(
        min_value=-2, max_value=2, required=False, allow_null=True
    )
    frequency_penalty = StrictFloatField(
        min_value=-2, max_value=2, required=False, allow_null=True
    )
    seed = StrictIntegerField(required=False, allow_null=True)

    def validate_messages(self, messages: list[dict[str, str]]) -> list[dict]:
        if messages[-1]["role"] != "user":
            raise serializers.ValidationError(_("The last message must be the user's."))
        return messages


def _unsupported(body: dict[str, Any]) -> str | None:
    """Return the first field we cannot honour that the body sets."""
    for name in sorted(UNSUPPORTED_FIELDS):
        value = body.get(name)
        if value is not None and value is not False and value != []:
            return name
    return None


def parse_completion_request(
    body: dict[str, Any], request: HttpRequest
) -> tuple[TurnRequest, dict]:
    """Return the turn and the stream options of an OpenAI chat completion body."""
    unsupported = _unsupported(body)
    if unsupported:
        raise OpenAIRequestError(
            _("`%(name)s` is not supported by this endpoint.") % {"name": unsupported},
            param=unsupported,
        )
    payload = CompletionInputSerializer(data=body)
    if not payload.is_valid():
        field, message = first_error(payload.errors)
        raise OpenAIRequestError(f"`{field}`: {message}", param=field or None)
    data = payload.validated_data
    messages = [dict(message) for message in data["messages"]]
    options = {
        name: data[name] for name in SAMPLING_FIELDS if data.get(name) is not None
    }
    turn = TurnRequest(
        user=request.user,
        message=messages[-1]["content"],
        model=data["model"],
        store=data["store"],
        history=messages[:-1],
        max_completion_tokens=data.get("max_completion_tokens")
        or data.get("max_tokens"),
        api_key=request.auth,
        options=options,
        idempotency_key=idempotency_key_of(request),
        endpoint=Endpoint.V1,
    )
    stream_options = data.get("stream_options") or {}
    return turn, {
        "stream": data["stream"],
        "include_usage": bool(stream_options.get("include_usage")),
    }


def _usage(result: TurnResult) -> dict[str, Any]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.total_tokens,
        "points": {"charged": result.points_charged, "remaining": result.remaining},
    }


def _finish_reason(result: TurnResult) -> str:
    limit = result.completion_limit
    return "length" if limit and result.completion_tokens >= limit else "stop"


def _points_headers(result: TurnResult) -> dict[str, str]:
    return {
        "X-Points-Charged": str(result.points_charged),
        "X-Points-Remaining": str(result.remaining),
    }


def _admitted_turn(request: HttpRequest) -> tuple[PreparedTurn | TurnResult, dict]:
    """Authenticate, throttle, read the body and hold the points, in one thread.

    Each crossing from the event loop to a thread and back costs CPU; this is
    the request's only one before the model is asked.
    """
    authenticate(request, session=False)
    body = json_object(request)
    turn_request, stream = parse_completion_request(body, request)
    return prepare_turn(turn_request), stream


@csrf_exempt  # API keys only; no session, so no CSRF exposure.
async def chat_completions(request: HttpRequest) -> HttpResponse:
    try:
        if request.method != "POST":
            raise OpenAIRequestError(_("Use POST."))
        prepared, stream = await sync_to_async(_admitted_turn)(request)
    except ServiceError as error:
        return openai_error_response(error)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if isinstance(prepared, TurnResult):
        if stream["stream"]:
            return _replayed_stream(prepared, completion_id, created)
        return _completion(prepared, completion_id, created)
    if stream["stream"]:
        return await _stream(prepared, completion_id, created, stream["include_usage"])
    outcome = await complete_turn(prepared, get_provider())
    if isinstance(outcome, Failed):
        return openai_error_response(outcome.error)
    return _completion(outcome.result, completion_id, created)


def _completion(result: TurnResult, completion_id: str, created: int) -> JsonResponse:
    return JsonResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": result.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "finish_reason": _finish_reason(result),
                }
            ],
            "usage": _usage(result),
        },
        headers=_points_headers(result),
    )


def _chunk(completion_id: str, created: int, model: str, **fields: Any) -> bytes:
    payload = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        **fields,
    }
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def _replayed_stream(
    result: TurnResult, completion_id: str, created: int
) -> HttpResponse:
    """Answer a repeated key's finished turn as one burst of chunks."""

    def chunk(**fields: Any) -> bytes:
        return _chunk(completion_id, created, result.model, **fields)

    body = b"".join(
        [
            chunk(
                choices=[
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": result.text},
                        "finish_reason": None,
                    }
                ]
            ),
            chunk(
                choices=[
                    {"index": 0, "delta": {}, "finish_reason": _finish_reason(result)}
                ],
                usage=_usage(result),
            ),
            b"data: [DONE]\n\n",
        ]
    )
    return HttpResponse(
        body, content_type="text/event-stream", headers=_points_headers(result)
    )


async def _stream(
    turn: PreparedTurn, completion_id: str, created: int, include_usage: bool
) -> HttpResponse:
    first, events = await start_stream(turn, get_provider())
    if isinstance(first, Failed):
        return openai_error_response(first.error)

    def chunk(**fields: Any) -> bytes:
        return _chunk(completion_id, created, turn.model, **fields)

    async def body() -> AsyncIterator[bytes]:
        async with aclosing(events):
            yield chunk(
                choices=[
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ]
            )
            event = first
            while isinstance(event, Delta):
                yield chunk(
                    choices=[
                        {
                            "index": 0,
                            "delta": {"content": event.text},
                            "finish_reason": None,
                        }
                    ]
                )
                event = await anext(events)
            if isinstance(event, Failed):
                yield openai_error_chunk(event.error)
                return
            result = event.result
            finish = {
                "index": 0,
                "delta": {},
                "finish_reason": _finish_reason(result),
            }
            if include_usage:
                yield chunk(choices=[finish])
                yield chunk(choices=[], usage=_usage(result))
            else:
                # Clients that did not ask for usage still learn the cost here.
                yield chunk(choices=[finish], usage=_usage(result))
            yield b"data: [DONE]\n\n"

    response = StreamingHttpResponse(body(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    response["X-Points-Held"] = str(turn.hold.amount)
    return response


@csrf_exempt
async def models(request: HttpRequest) -> HttpResponse:
    try:
        if request.method != "GET":
            raise OpenAIRequestError(_("Use GET."))
        await sync_to_async(authenticate)(request, session=False)
    except ServiceError as error:
        return openai_error_response(error)
    return JsonResponse(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "eora"}
                for name in settings.LLM_MODELS
            ],
        }
    )
