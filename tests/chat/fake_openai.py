"""A fake OpenAI-compatible server, spoken to over real HTTP by our provider.

It answers `POST /v1/chat/completions` (server-sent chunks or one JSON body) and
`GET /v1/models`, records every request, and behaves as the test's `Script` says:
report usage or not, fail with a status, stall, break off mid-stream, or hold the
last delta back until a gate opens.
"""

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# How long the server waits for a gate before giving up on the stream (and
# breaking it, so that a test that never opens the gate fails instead of passing).
GATE_TIMEOUT_SECONDS = 10
# How often the serving loop checks for `stop()`; the default half second would
# add that much to every test.
POLL_SECONDS = 0.02
ERROR_TYPES = {429: "rate_limit_exceeded", 500: "server_error"}


@dataclass
class Script:
    """What the server answers to the next chat completion."""

    deltas: list[str] = field(default_factory=lambda: ["Hello", " there", "!"])
    usage: tuple[int, int] | None = None
    status: int = 200
    # Send this many deltas, then close the socket without `[DONE]`.
    error_after: int | None = None
    stall_seconds: float = 0
    # Wait for this event before sending the last delta.
    gate: threading.Event | None = None
    # The usage object sent as it is (any JSON), instead of one made from `usage`.
    raw_usage: Any = None
    # Send this many deltas, then a chunk that is not JSON.
    malformed_after: int | None = None
    # Send the chunk with the finish reason, and `[DONE]`, at the end.
    finish: bool = True
    done: bool = True
    # Keep the connection open after a JSON answer, for the client's next request.
    keep_alive: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    # The client's port: requests on one kept-alive connection share it.
    client_port: int = 0

    @property
    def include_usage(self) -> bool:
        return includes_usage(self.body or {})


def includes_usage(body: dict[str, Any]) -> bool:
    """Return whether a chat completion request asks for the usage chunk."""
    options = body.get("stream_options") or {}
    return bool(options.get("include_usage"))


class FakeOpenAI:
    """Serve the OpenAI wire protocol on 127.0.0.1 from a daemon thread."""

    def __init__(self) -> None:
        self.script = Script()
        self.requests: list[RecordedRequest] = []
        self.sent_last_delta = threading.Event()
        self.stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_SECONDS},
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    def start(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _chunk(model: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "usage": None,
        **fields,
    }


def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict:
    return {
        "index": 0,
        "delta": delta,
        "logprobs": None,
        "finish_reason": finish_reason,
    }


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _handler_for(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._record(None)
            if self.path != "/v1/models":
                self._send_json(404, _error(404, "Not found."))
                return
            models = [{"id": "gpt-4o-mini", "object": "model", "owned_by": "fake"}]
            self._send_json(200, {"object": "list", "data": models})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            self._record(body)
            if self.path != "/v1/chat/completions":
                self._send_json(404, _error(404, "Not found."))
                return
            script = fake.script
            if script.stall_seconds and fake.stopping.wait(script.stall_seconds):
                return
            try:
                if script.status != 200:
                    self._send_json(script.status, _error(script.status, "Failed."))
                elif body.get("stream"):
                    self._stream(script, body)
                else:
                    self._complete(script, body)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up first (a timeout): nothing left to answer.
                self.close_connection = True

        def _record(self, body: dict[str, Any] | None) -> None:
            fake.requests.append(
                RecordedRequest(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    client_port=self.client_address[1],
                )
            )

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self._send_head(status, "application/json", length=len(data))
            self._send_body(data)

        def _send_head(self, status: int, content_type: str, *, length: int) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(length))
            if not fake.script.keep_alive:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()

        def _send_body(self, data: bytes) -> None:
            self.wfile.write(data)
            self.wfile.flush()

        def _complete(self, script: Script, body: dict[str, Any]) -> None:
            """Answer in one JSON body, spoilt by the script's faults as a stream is.

            `done` has no meaning here: a JSON answer has no `[DONE]`.
            """
            if not self._gate_opens(script.gate) or script.error_after is not None:
                self._send_head(200, "application/json", length=1_000)
                self._send_body(b'{"id": "chatcmpl-fake", "choices": [')
                self._break_off()
                return
            if script.malformed_after is not None:
                self._send_head(200, "application/json", length=36)
                self._send_body(b'{"id": "chatcmpl-fake", "choices": [')
                return
            usage = script.raw_usage
            if usage is None and script.usage is not None:
                usage = _usage(*script.usage)
            message = {"role": "assistant", "content": "".join(script.deltas)}
            finish_reason = "stop" if script.finish else None
            self._send_json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "finish_reason": finish_reason,
                        }
                    ],
                    "usage": usage,
                },
            )
            fake.sent_last_delta.set()

        def _stream(self, script: Script, body: dict[str, Any]) -> None:
            model = body.get("model", "")
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self._send_event(
                _chunk(model, choices=[_choice({"role": "assistant", "content": ""})])
            )
            last = len(script.deltas) - 1
            for index, delta in enumerate(script.deltas):
                gate_shut = index == last and not self._gate_opens(script.gate)
                if index == script.error_after or gate_shut:
                    self._break_off()
                    return
                if index == script.malformed_after:
                    self._send_chunk(b'data: {"id": "chatcmpl-fake", "choices": [\n\n')
                    self._send_chunk(b"")
                    return
                self._send_event(_chunk(model, choices=[_choice({"content": delta})]))
                if index == last:
                    fake.sent_last_delta.set()
            if script.error_after is not None:
                self._break_off()
                return
            if script.finish:
                self._send_event(_chunk(model, choices=[_choice({}, "stop")]))
            usage = script.raw_usage
            if usage is None and script.usage is not None:
                usage = _usage(*script.usage)
            if usage is not None and includes_usage(body):
                self._send_event(_chunk(model, choices=[], usage=usage))
            if script.done:
                self._send_chunk(b"data: [DONE]\n\n")
            self._send_chunk(b"")

        def _gate_opens(self, gate: threading.Event | None) -> bool:
            """Wait for the gate; give up when it stays shut or the server stops."""
            deadline = time.monotonic() + GATE_TIMEOUT_SECONDS
            while gate is not None and not gate.wait(POLL_SECONDS):
                if fake.stopping.is_set() or time.monotonic() > deadline:
                    return False
            return True

        def _send_event(self, payload: dict[str, Any]) -> None:
            self._send_chunk(f"data: {json.dumps(payload)}\n\n".encode())

        def _send_chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def _break_off(self) -> None:
            # End the connection in the middle of the chunked body, as a crashed
            # upstream or a cut network would.
            self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


def _error(status: int, message: str) -> dict[str, Any]:
    error_type = ERROR_TYPES.get(status, "invalid_request_error")
    return {
        "error": {
            "message": message,
            "type": error_type,
            "param": None,
            "code": error_type,
        }
    }
