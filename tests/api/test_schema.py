"""The OpenAPI document at /api/schema/ says what the server accepts and answers."""

import pytest
from django.test import Client
from drf_spectacular.validation import validate_schema

from chat.api import ChatInputSerializer
from chat.openai_api import IGNORED_FIELDS, ROLES, UNSUPPORTED_FIELDS
from points.models import Hold
from points.services import MAX_IDEMPOTENCY_KEY_LENGTH

OPENAI_PATHS = [("/v1/chat/completions", "post"), ("/v1/models", "get")]


@pytest.fixture
def schema(client: Client, db: None) -> dict:
    return client.get("/api/schema/", headers={"Accept": "application/json"}).json()


@pytest.fixture
def key_client(api_key: str, settings) -> Client:
    settings.DEMO_STREAM_DELAY_MS = 0
    return Client(headers={"Authorization": f"Bearer {api_key}"})


def idempotency_key_schema(schema: dict, path: str) -> dict:
    (parameter,) = [
        parameter
        for parameter in schema["paths"][path]["post"]["parameters"]
        if parameter["name"] == "Idempotency-Key"
    ]
    assert (parameter["in"], parameter["required"]) == ("header", False)
    return parameter["schema"]


def test_served_schema_is_valid_openapi(schema: dict) -> None:
    validate_schema(schema)


@pytest.mark.parametrize(("path", "method"), OPENAI_PATHS)
def test_schema_describes_the_openai_endpoints(
    schema: dict, path: str, method: str
) -> None:
    operation = schema["paths"][path][method]

    assert operation["security"] == [{"ApiKey": []}]
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert "application/json" in operation["responses"]["200"]["content"]


@pytest.mark.parametrize(("path", "method"), OPENAI_PATHS)
def test_openai_endpoints_document_errors_in_openai_shape(
    schema: dict, path: str, method: str
) -> None:
    responses = schema["paths"][path][method]["responses"]
    errors = {
        status: response["content"]["application/json"]["schema"]
        for status, response in responses.items()
        if int(status) >= 400
    }

    assert "401" in errors
    for status, body in errors.items():
        # 413 may also come before the key is read, in the API's envelope.
        shapes = body.get("anyOf", [body])
        openai = [shape["properties"]["error"] for shape in shapes]
        assert any(
            error.get("required") == ["message", "type", "code", "param"]
            for error in openai
        ), status


def test_chat_completions_body_names_what_the_server_reads(schema: dict) -> None:
    body = schema["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    fields = body["content"]["application/json"]["schema"]["properties"]

    assert {"model", "messages", "max_tokens", "max_completion_tokens"} <= set(fields)
    assert {"stream", "stream_options", "store", "temperature", "top_p", "stop"} <= set(
        fields
    )
    assert set(UNSUPPORTED_FIELDS | IGNORED_FIELDS) <= set(fields)
    roles = fields["messages"]["items"]["properties"]["role"]["enum"]
    assert set(roles) == ROLES


def test_chat_body_names_what_the_server_reads(schema: dict) -> None:
    body = schema["paths"]["/api/chat"]["post"]["requestBody"]
    fields = body["content"]["application/json"]["schema"]["properties"]

    assert set(fields) == set(ChatInputSerializer().fields)


def test_chat_message_limit_is_the_setting_when_served(
    client: Client, settings
) -> None:
    settings.CHAT_MAX_MESSAGE_CHARS = 123
    schema = client.get("/api/schema/", headers={"Accept": "application/json"}).json()
    body = schema["paths"]["/api/chat"]["post"]["requestBody"]

    message = body["content"]["application/json"]["schema"]["properties"]["message"]
    assert message["maxLength"] == 123


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
def test_idempotency_key_limits_are_the_servers(schema: dict, path: str) -> None:
    # An empty header is no key, so the schema allows it.
    assert idempotency_key_schema(schema, path) == {
        "type": "string",
        "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH,
    }


def chat_request(client: Client, path: str, key: str):
    body = (
        {"message": "hello"}
        if path == "/api/chat"
        else {"model": "eora-demo", "messages": [{"role": "user", "content": "hi"}]}
    )
    return client.post(
        path,
        body,
        content_type="application/json",
        headers={"Idempotency-Key": key},
    )


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
def test_idempotency_key_of_the_documented_maximum_is_accepted(
    key_client: Client, schema: dict, path: str
) -> None:
    longest = idempotency_key_schema(schema, path)["maxLength"]

    response = chat_request(key_client, path, "k" * longest)

    assert response.status_code == 200


def test_chat_refuses_idempotency_key_past_the_documented_maximum(
    key_client: Client, schema: dict
) -> None:
    longest = idempotency_key_schema(schema, "/api/chat")["maxLength"]

    response = chat_request(key_client, "/api/chat", "k" * (longest + 1))

    assert response.status_code == 400
    assert response.json()["success"] is False
    assert response.json()["code"] == "invalid_request"
    assert not Hold.objects.exists()


def test_chat_completions_refuses_idempotency_key_past_the_documented_maximum(
    key_client: Client, schema: dict
) -> None:
    longest = idempotency_key_schema(schema, "/v1/chat/completions")["maxLength"]

    response = chat_request(key_client, "/v1/chat/completions", "k" * (longest + 1))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert not Hold.objects.exists()


def test_schema_documents_page_cursors_as_tokens(schema: dict) -> None:
    conversations = schema["paths"]["/api/conversations"]["get"]["parameters"]
    history = schema["paths"]["/api/user/points/history"]["get"]["parameters"]
    before = next(p for p in conversations if p["name"] == "before")
    cursor = next(p for p in history if p["name"] == "cursor")

    assert before["schema"] == cursor["schema"] == {"type": "string", "minLength": 1}
