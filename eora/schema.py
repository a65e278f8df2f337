"""OpenAPI pieces shared by the API views, and the chat endpoint's description."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

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
            },
            "required": ["deducted", "remaining", "token_usage"],
        },
    },
    "required": ["success", "response", "session_id", "points_info"],
}


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": ERROR_SCHEMA}},
    }


CHAT_OPERATION = {
    "operationId": "chat",
    "summary": "One metered chat turn",
    "description": (
        "Answers as JSON, or as server-sent events with `stream: true` (or "
        '`Accept: text/event-stream`): `delta` events (`{"text"}`), then `done` '
        "(the JSON body below) or `error`. An `Idempotency-Key` header makes a "
        "retry return the first answer without a second charge."
    ),
    "tags": ["chat"],
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 200},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "session_id": {"type": "string", "nullable": True},
                        "message": {"type": "string", "minLength": 1},
                        "model": {"type": "string"},
                        "stream": {"type": "boolean"},
                    },
                    "required": ["message"],
                }
            }
        },
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
        "400": _error("Bad request."),
        "401": _error("Missing or invalid credentials."),
        "402": _error("Not enough points (`current_points`, `required`)."),
        "403": _error("CSRF failure."),
        "404": _error("Unknown conversation or model."),
        "409": _error("Idempotency key conflict or still in progress."),
        "413": _error("Body too large."),
        "429": _error("Throttled; see Retry-After."),
        "502": _error("The model failed; nothing was charged."),
    },
    "security": [{"ApiKey": []}, {"cookieAuth": []}],
}


def add_chat_endpoint(
    result: dict, generator: object, request: object, public: bool
) -> dict:
    """Describe POST /api/chat, a plain async view that DRF cannot introspect."""
    result.setdefault("paths", {})["/api/chat"] = {"post": CHAT_OPERATION}
    schemes = result.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.setdefault("ApiKey", {"type": "http", "scheme": "bearer"})
    return result
