"""The benchmarks' fake upstream: OpenAI's chat completions at a fixed pace.

A streamed answer is 20 content chunks 10 ms apart, then the finish reason, the
usage (when asked for) and `[DONE]`; a JSON answer comes after 200 ms. The same
for every caller, so that what a gateway adds is all that differs.

    .venv/bin/python -m uvicorn bench.upstream:app --port 9000 --no-access-log
"""

import asyncio
import json
import time
from typing import Any

CHUNKS = 20
CHUNK_GAP_SECONDS = 0.010
JSON_SECONDS = 0.200
WORD = "token "


def _prompt_tokens(body: dict[str, Any]) -> int:
    # About a token per four characters: a count, not a tokenizer.
    text = "".join(str(m.get("content", "")) for m in body.get("messages") or [])
    return max(1, len(text) // 4)


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def _read_body(receive: Any) -> dict[str, Any]:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return json.loads(body or b"{}")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = await _read_body(receive)
    model = body.get("model", "bench")
    usage = {
        "prompt_tokens": _prompt_tokens(body),
        "completion_tokens": CHUNKS,
        "total_tokens": _prompt_tokens(body) + CHUNKS,
    }
    base = {"id": "chatcmpl-bench", "created": int(time.time()), "model": model}
    if not body.get("stream"):
        await asyncio.sleep(JSON_SECONDS)
        data = json.dumps(
            {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": WORD * CHUNKS},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )
    chunk = {**base, "object": "chat.completion.chunk"}
    for index in range(CHUNKS):
        if index:
            await asyncio.sleep(CHUNK_GAP_SECONDS)
        delta = {"content": WORD}
        if index == 0:
            delta["role"] = "assistant"
        payload = {
            **chunk,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        await send(
            {"type": "http.response.body", "body": _event(payload), "more_body": True}
        )
    tail = _event(
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    )
    if (body.get("stream_options") or {}).get("include_usage"):
        tail += _event({**chunk, "choices": [], "usage": usage})
    tail += b"data: [DONE]\n\n"
    await send({"type": "http.response.body", "body": tail})
