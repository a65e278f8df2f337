"""OpenAPI pieces shared by the API views, and the plain views' operations.

POST /api/chat and the OpenAI-compatible /v1 endpoints are plain async views
that DRF cannot introspect: their operations are written here by hand and added
by `add_chat_endpoint`, a drf-spectacular postprocessing hook. tests/api checks
them against what chat/api.py and chat/openai_api.py accept; this module stays
free of the apps' imports.
"""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

# points.services.MAX_IDEMPOTENCY_KEY_LENGTH; a test keeps the two equal.
IDEMPOTENCY_KEY_MAX_LENGTH = 255
PAGE_CURSOR_HELP = (
    "The `next_cursor` of the previous page, as it came; leave it out for the "
    "first page. Any other value is refused with 400 `invalid_request`."
)

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "success": serializers.BooleanField(default=False),
        "error": serializers.CharField(help_text="A human-readable message."),
        "code": serializers.CharField(help_text="A stable machine-readable code."),
    },
)

ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="Bad request."),
    401: OpenApiResponse(
        ErrorSerializer, description="Missing or invalid credentials."
    ),
    403: OpenApiResponse(ErrorSerializer, description="CSRF failure or not allowed."),
    404: OpenApiResponse(ErrorSerializer, description="Not found."),
    429: OpenApiResponse(ErrorSerializer, description="Throttled; see Retry-After."),
}

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "success": {"type": "boolean"},
        "error": {"type": "string"},
        "code": {"type": "string"},
    },
    "required": ["success", "error", "code"],
    "additionalProperties": True,
}

TOKEN_USAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
    },
    "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
}

CHAT_RESPONSE_SCHEMA = {
    "type": "object",
    "properties": {
        "success": {"type": "boolean"},
        "response": {"type": "string"},
        "session_id": {"type": "string", "nullable": True},
        "model": {"type": "string"},
        "status": {"type": "string", "enum": ["complete", "partial"]},
        "points_info": {
            "type": "object",
            "properties": {
                "deducted": {"type": "integer"},
                "remaining": {"type": "integer"},
                "token_usage": TOKEN_USAGE_SCHEMA,
                "list_cost": {
                    "type": "integer",
                    "description": "The cost before the tier discount.",
                },
                "tier": {"type": "string", "nullable": True},
            },
            "required": ["deducted", "remaining", "token_usage"],
        },
    },
    "required": ["success", "response", "session_id", "points_info"],
}


def _error(description: str, schema: dict | None = None) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or ERROR_SCHEMA}},
    }


IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes a retry return the first answer without a second charge. Spaces "
        "around it are ignored; an empty header is no key."
    ),
    "schema": {
        "type": "string",
        "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH,
    },
}


def chat_request_schema() -> dict[str, Any]:
    """Return the body POST /api/chat accepts (chat.api.parse_chat_request)."""
    return {
        "type": "object",
        "properties": {
            "session_id": {
                "description": (
                    "The conversation to continue (its `id`); null, empty or "
                    "left out starts a new one. Another value answers 404."
                ),
                "anyOf": [{"type": "string", "nullable": True}, {"type": "integer"}],
            },
            "message": {
                "type": "string",
                "pattern": r"\S",
                "maxLength": settings.CHAT_MAX_MESSAGE_CHARS,
                "description": (
                    "Text with a non-space character. A NUL character or an "
                    "unpaired surrogate is refused with 400 `invalid_characters`."
                ),
            },
            "model": {
                "type": "string",
                "nullable": True,
                "description": (
                    "One of GET /api/models; null or empty is the first. Another "
                    "answers 404 `model_not_found`."
                ),
            },
            "stream": {
                "type": "boolean",
                "description": "Answer as server-sent events.",
            },
        },
        "required": ["message"],
    }


def chat_operation() -> dict[str, Any]:
    return {
        "operationId": "chat",
        "summary": "One metered chat turn",
        "description": (
            "Answers as JSON, or as server-sent events with `stream: true` (or "
            '`Accept: text/event-stream`): `delta` events (`{"text"}`), then '
            "`done` (the JSON body below) or `error`. An `Idempotency-Key` header "
            "makes a retry return the first answer without a second charge."
        ),
        "tags": ["chat"],
        "parameters": [IDEMPOTENCY_KEY_PARAMETER],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": chat_request_schema()}},
        },
        "responses": {
            "200": {
                "description": "The answer and what it cost.",
                "content": {
                    "application/json": {"schema": CHAT_RESPONSE_SCHEMA},
                    "text/event-stream": {
                        "schema": {
                            "description": "One server-sent event.",
                            "type": "object",
                            "properties": {
                                "event": {
                                    "type": "string",
                                    "enum": ["delta", "done", "error"],
                                },
                                "data": {"type": "string"},
                            },
                            "required": ["data"],
                        }
                    },
                },
            },
            "400": _error(
                "Bad request: `invalid_request`, `invalid_message`, "
                "`invalid_characters`, `message_too_long` or "
                "`context_length_exceeded`."
            ),
            "401": _error("Missing or invalid credentials."),
            "402": _error("Not enough points (`current_points`, `required`)."),
            "403": _error("CSRF failure."),
            "404": _error("Unknown conversation or model."),
            "409": _error("Idempotency key conflict or still in progress."),
            "413": _error("Body too large."),
            "429": _error("Throttled; see Retry-After."),
            "502": _error("The model failed; nothing was charged."),
            "503": _error("The answer could not be saved (`deducted`)."),
        },
        "security": [{"ApiKey": []}, {"cookieAuth": []}],
    }


# OpenAI's error shape: what the /v1 endpoints answer so that SDKs raise as usual.
OPENAI_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": "string", "nullable": True},
                "param": {"type": "string", "nullable": True},
            },
            "required": ["message", "type", "code", "param"],
            "additionalProperties": True,
        }
    },
    "required": ["error"],
}

# chat.openai_api.ROLES
OPENAI_ROLES = ["system", "developer", "user", "assistant"]
# chat.openai_api.UNSUPPORTED_FIELDS: refused unless null, false or [].
OPENAI_UNSUPPORTED_FIELDS = [
    "audio",
    "function_call",
    "functions",
    "logprobs",
    "modalities",
    "prediction",
    "response_format",
    "tool_choice",
    "tools",
    "top_logprobs",
]
# chat.openai_api.IGNORED_FIELDS: accepted with any value, and ignored.
OPENAI_IGNORED_FIELDS = [
    "logit_bias",
    "metadata",
    "parallel_tool_calls",
    "service_tier",
    "user",
]

OPENAI_TEXT_PART_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["text"]},
        "text": {"type": "string"},
    },
    "required": ["type", "text"],
}
OPENAI_MESSAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": OPENAI_ROLES},
        "content": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": OPENAI_TEXT_PART_SCHEMA},
            ]
        },
    },
    "required": ["role", "content"],
}
OPENAI_UNSUPPORTED_SCHEMA = {
    "description": "Not supported: leave it out (null, false or [] count as out).",
    "anyOf": [
        {"type": "boolean", "nullable": True, "enum": [False, None]},
        {"type": "array", "maxItems": 0, "items": {}},
    ],
}
OPENAI_TOKEN_LIMIT_SCHEMA = {"type": "integer", "minimum": 1, "nullable": True}
OPENAI_PENALTY_SCHEMA = {
    "type": "number",
    "minimum": -2,
    "maximum": 2,
    "nullable": True,
    "description": "Passed to the model.",
}


def chat_completion_request_schema() -> dict[str, Any]:
    """Return the body /v1/chat/completions accepts (parse_completion_request)."""
    return {
        "type": "object",
        "properties": {
            "model": {
                "type": "string",
                "minLength": 1,
                "description": "One of GET /v1/models; another answers 404.",
            },
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": OPENAI_MESSAGE_SCHEMA,
                "description": (
                    "The last message is the user's, with text that has a "
                    "non-space character and at most "
                    f"{settings.CHAT_MAX_MESSAGE_CHARS} characters. No message "
                    "may hold a NUL character or an unpaired surrogate."
                ),
            },
            "max_completion_tokens": OPENAI_TOKEN_LIMIT_SCHEMA,
            "max_tokens": {
                **OPENAI_TOKEN_LIMIT_SCHEMA,
                "description": "Used when `max_completion_tokens` is not given.",
            },
            "n": {"type": "integer", "enum": [1, None], "nullable": True},
            "stream": {"type": "boolean"},
            "stream_options": {
                "type": "object",
                "nullable": True,
                "properties": {"include_usage": {"type": "boolean"}},
            },
            "store": {
                "type": "boolean",
                "description": "Keep the exchange as a conversation.",
            },
            "temperature": {
                "type": "number",
                "minimum": 0,
                "maximum": 2,
                "nullable": True,
            },
            "top_p": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "nullable": True,
                "description": "Passed to the model.",
            },
            "stop": {
                "description": "Passed to the model.",
                "anyOf": [
                    {"type": "string", "nullable": True},
                    {"type": "array", "items": {"type": "string"}, "maxItems": 4},
                ],
            },
            "presence_penalty": OPENAI_PENALTY_SCHEMA,
            "frequency_penalty": OPENAI_PENALTY_SCHEMA,
            "seed": {
                "type": "integer",
                "nullable": True,
                "description": "Passed to the model.",
            },
            **{
                name: {"description": "Accepted and ignored."}
                for name in OPENAI_IGNORED_FIELDS
            },
            **{name: OPENAI_UNSUPPORTED_SCHEMA for name in OPENAI_UNSUPPORTED_FIELDS},
        },
        "required": ["model", "messages"],
    }


OPENAI_USAGE_SCHEMA = {
    "type": "object",
    "properties": {
        **TOKEN_USAGE_SCHEMA["properties"],
        "points": {
            "type": "object",
            "properties": {
                "charged": {"type": "integer"},
                "remaining": {"type": "integer"},
            },
            "required": ["charged", "remaining"],
        },
    },
    "required": [*TOKEN_USAGE_SCHEMA["required"], "points"],
}
CHAT_COMPLETION_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["chat.completion"]},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "message": {
                        "type": "object",
                        "properties": {
                            "role": {"type": "string", "enum": ["assistant"]},
                            "content": {"type": "string"},
                        },
                        "required": ["role", "content"],
                    },
                    "finish_reason": {"type": "string", "enum": ["stop", "length"]},
                },
                "required": ["index", "message", "finish_reason"],
            },
        },
        "usage": OPENAI_USAGE_SCHEMA,
    },
    "required": ["id", "object", "created", "model", "choices", "usage"],
}
POINTS_HEADERS = {
    "X-Points-Charged": {
        "description": "Points this answer cost (JSON answers).",
        "schema": {"type": "integer"},
    },
    "X-Points-Remaining": {
        "description": "The balance after it (JSON answers).",
        "schema": {"type": "integer"},
    },
    "X-Points-Held": {
        "description": "Points held while a stream runs (streams).",
        "schema": {"type": "integer"},
    },
}


def _openai_error(description: str) -> dict:
    return _error(description, OPENAI_ERROR_SCHEMA)


def chat_completions_operation() -> dict[str, Any]:
    return {
        "operationId": "v1_chat_completions",
        "summary": "OpenAI-compatible chat completion, metered in points",
        "description": (
            "Works with OpenAI SDKs: an EORA API key as `api_key` and `/v1` as "
            "`base_url`. With `stream: true` the answer comes as "
            "`chat.completion.chunk` events and ends with `data: [DONE]`; the "
            "last chunk carries `usage` with the points charged. Nothing is kept "
            "as a conversation unless `store` is true. Errors come in OpenAI's "
            "shape."
        ),
        "tags": ["openai"],
        "parameters": [IDEMPOTENCY_KEY_PARAMETER],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": chat_completion_request_schema()}
            },
        },
        "responses": {
            "200": {
                "description": "The completion and what it cost.",
                "headers": POINTS_HEADERS,
                "content": {
                    "application/json": {"schema": CHAT_COMPLETION_SCHEMA},
                    "text/event-stream": {
                        "schema": {
                            "description": (
                                "One server-sent event: a `chat.completion.chunk` "
                                'or an `{"error"}` object as JSON, or `[DONE]`.'
                            ),
                            "type": "object",
                            "properties": {"data": {"type": "string"}},
                            "required": ["data"],
                        }
                    },
                },
            },
            "400": _openai_error("Bad request (`param` names the field)."),
            "401": _openai_error("Missing or invalid API key (`invalid_api_key`)."),
            "402": _openai_error(
                "Not enough points (`insufficient_quota`; `current_points`, "
                "`required`)."
            ),
            "404": _openai_error("Unknown model."),
            "409": _openai_error("Idempotency key conflict or still in progress."),
            "413": _error(
                "Body too large. Sent without an API key, it is refused before "
                'the key is read, in the `{"success": false}` envelope.',
                {"anyOf": [OPENAI_ERROR_SCHEMA, ERROR_SCHEMA]},
            ),
            "429": _openai_error("Throttled; see Retry-After."),
            "502": _openai_error("The model failed; nothing was charged."),
            "503": _openai_error("The answer could not be saved (`deducted`)."),
        },
        "security": [{"ApiKey": []}],
    }


MODEL_LIST_SCHEMA = {
    "type": "object",
    "properties": {
        "object": {"type": "string", "enum": ["list"]},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "object": {"type": "string", "enum": ["model"]},
                    "created": {"type": "integer"},
                    "owned_by": {"type": "string"},
                },
                "required": ["id", "object", "created", "owned_by"],
            },
        },
    },
    "required": ["object", "data"],
}


def models_operation() -> dict[str, Any]:
    return {
        "operationId": "v1_models",
        "summary": "OpenAI-compatible list of the models",
        "tags": ["openai"],
        "responses": {
            "200": {
                "description": "The models a completion may name.",
                "content": {"application/json": {"schema": MODEL_LIST_SCHEMA}},
            },
            "401": _openai_error("Missing or invalid API key (`invalid_api_key`)."),
            "429": _openai_error("Throttled; see Retry-After."),
        },
        "security": [{"ApiKey": []}],
    }


def add_chat_endpoint(
    result: dict, generator: object, request: object, public: bool
) -> dict:
    """Describe POST /api/chat and /v1, plain async views DRF cannot introspect."""
    paths = result.setdefault("paths", {})
    paths["/api/chat"] = {"post": chat_operation()}
    paths["/v1/chat/completions"] = {"post": chat_completions_operation()}
    paths["/v1/models"] = {"get": models_operation()}
    schemes = result.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.setdefault("ApiKey", {"type": "http", "scheme": "bearer"})
    return result
