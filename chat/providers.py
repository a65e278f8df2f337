"""Model providers: the offline demo model and any OpenAI-compatible endpoint.

A provider streams the answer as text deltas and ends, at most once, with the
usage the provider itself reported, or returns the whole answer at once.
Failures surface as `ProviderError`.
"""

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import httpx
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from chat import upstream
from chat.exceptions import ProviderError, ProviderTimeout
from points.tokens import encoding_name_for, get_encoding

HANGUL = re.compile(r"[\uac00-\ud7a3]")
GREETING = re.compile(r"^\s*(안녕|hello|hi|hey|good (morning|evening))", re.I)
PIECE = re.compile(r"\S+\s*|\s+")
# How long the rest of a stream is read after `[DONE]` before its connection is
# dropped instead of reused.
DRAIN_SECONDS = 1.0


@dataclass(frozen=True)
class ProviderUsage:
    """The usage a provider reported, as it sent it: the ledger decides if it counts."""

    prompt_tokens: object
    completion_tokens: object


@dataclass(frozen=True)
class StreamCut:
    """The stream ended without saying the answer was finished (no finish reason)."""


StreamEvent = str | ProviderUsage | StreamCut


@dataclass(frozen=True)
class Completion:
    """A whole answer, asked for at once."""

    text: str
    # None when the provider did not say the answer was finished (it was cut).
    finish_reason: str | None
    usage: ProviderUsage | None


class Provider(Protocol):
    """A model, asked for an answer as a stream or all at once.

    `stream` yields text deltas, then a `StreamCut` if the answer did not finish,
    then at most one `ProviderUsage`; `complete` returns the same as one
    `Completion`. Both raise `ProviderError` (or `ProviderTimeout`) when the
    model fails. Sampling options are passed on as `options`.
    """

    name: str

    def stream(
        self,
        *,
        messages: list[dict[str, str]],
        model: str,
        max_tokens: int,
        **options: object,
    ) -> AsyncIterator[StreamEvent]: ...

    async def complete(
        self,
        *,
        messages: list[dict[str, str]],
        model: str,
        max_tokens: int,
        **options: object,
    ) -> Completion: ...


KOREAN_ANSWERS = {
    "greeting": (
        "안녕하세요! 저는 EORA의 오프라인 데모 모델이에요. 실제 AI 모델 대신 "
        "이 서버 안에서 바로 답을 만들어 드립니다. 궁금한 것을 물어보시면, 질문과 "
        "답변의 토큰 수만큼 포인트가 차감되는 과정을 직접 확인하실 수 있어요."
    ),
    "question": (
        "좋은 질문이에요. 「{topic}」에 대해 물어보셨네요. 저는 오프라인 데모 "
        "모델이라 실제 정보를 찾아 답하지는 못하지만, 운영자가 OpenAI 호환 모델을 "
        "연결하면 같은 화면에서 자세한 답변을 받으실 수 있습니다. 이번 답변도 입력과 "
        "출력 토큰을 세어 포인트로 정산됩니다."
    ),
    "statement": (
        "말씀하신 「{topic}」 잘 들었습니다. 저는 EORA의 오프라인 데모 모델이라 "
        "내용을 깊이 분석하지는 못해요. 대신 대화가 어떻게 토큰으로 계산되고 "
        "포인트가 차감되는지 보여 드리고 있습니다. 더 이야기해 주세요!"
    ),
}
ENGLISH_ANSWERS = {
    "greeting": (
        "Hello! I am EORA's offline demo model. Instead of a real AI model, I "
        "write my answers right here on the server. Ask me anything and you can "
        "watch the points for your question and my answer being counted."
    ),
    "question": (
        'Good question. You asked about "{topic}". I am an offline demo model, '
        "so I cannot look up real information, but once the operator connects an "
        "OpenAI-compatible model you will get a full answer on this same page. "
        "This answer, too, is metered in prompt and completion tokens."
    ),
    "statement": (
        'Thanks, I read "{topic}". As EORA\'s offline demo model I cannot analyse '
        "it in depth; what I show you is how a conversation is counted in tokens "
        "and paid for in points. Tell me more!"
    ),
}


def demo_answer(question: str) -> str:
    """Return the demo model's answer: the same question always gets the same one."""
    answers = KOREAN_ANSWERS if HANGUL.search(question) else ENGLISH_ANSWERS
    if GREETING.match(question):
        kind = "greeting"
    elif question.rstrip().endswith(("?", "？")) or "까" in question[-3:]:
        kind = "question"
    else:
        kind = "statement"
    topic = " ".join(question.split())
    if len(topic) > 40:
        digest = int(hashlib.sha256(question.encode()).hexdigest(), 16)
        topic = topic[: 37 + digest % 3].rstrip() + "…"
    return answers[kind].format(topic=topic)


def truncate_to_tokens(text: str, model: str, max_tokens: int) -> str:
    encoding = get_encoding(encoding_name_for(model))
    if encoding is None:
        return text[: max_tokens * 2]
    tokens = encoding.encode_ordinary(text)
    if len(tokens) <= max_tokens:
        return text
    return encoding.decode_bytes(tokens[:max_tokens]).decode("utf-8", "ignore")


class DemoProvider:
    """A deterministic local model: a short answer in the question's language."""

    name = "demo"
    label = _("Offline demo model")

    async def stream(
        self,
        *,
        messages: list[dict[str, str]],
        model: str,
        max_tokens: int,
        **options: object,
    ) -> AsyncIterator[StreamEvent]:
        # Sampling options do not apply: the demo model is deterministic.
        answer = self._answer(messages, model, max_tokens)
        delay = settings.DEMO_STREAM_DELAY_MS / 1000
        for piece in PIECE.findall(answer):
            if delay:
                await asyncio.sleep(delay)
            yield piece

    async def complete(
        self,
        *,
        messages: list[dict[str, str]],
        model: str,
        max_tokens: int,
        **options: object,
    ) -> Completion:
        answer = self._answer(messages, model, max_tokens)
        # As long as the same answer takes streamed: a model writes either way.
        delay = settings.DEMO_STREAM_DELAY_MS / 1000
        if delay:
            await asyncio.sleep(delay * len(PIECE.findall(answer)))
        return Completion(text=answer, finish_reason="stop", usage=None)

    def _answer(
        self, messages: list[dict[str, str]], model: str, max_tokens: int
    ) -> str:
        question = next(
            (m["content"] for m in reversed(messages) if m["role"] == "user"), ""
        )
        return truncate_to_tokens(demo_answer(question), model, max_tokens)


def _request_body(
    *,
    messages: list[dict[str, str]],
    model: str,
    max_tokens: int,
    stream: bool,
    options: dict[str, object],
) -> bytes:
    """Return the JSON body of a chat completion request, built once."""
    body: dict[str, object] = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        **options,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, ensure_ascii=False).encode()


def _json_object(data: bytes) -> dict:
    """Return the JSON object sent; raise `ProviderError` for anything else."""
    try:
        value = json.loads(data)
    except ValueError as error:
        raise ProviderError() from error
    if not isinstance(value, dict) or value.get("error"):
        # An error reported inside a 200 (the SDK raised for it too).
        raise ProviderError()
    return value


def _usage(value: object) -> ProviderUsage | None:
    """Return the usage as sent: the ledger judges the counts, not this."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return ProviderUsage(prompt_tokens=None, completion_tokens=None)
    return ProviderUsage(
        prompt_tokens=value.get("prompt_tokens"),
        completion_tokens=value.get("completion_tokens"),
    )


def _choices(chunk: dict) -> list[dict]:
    choices = chunk.get("choices") or []
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise ProviderError()
    return choices


def _text(part: object, field: str) -> str:
    """Return the text of a delta or a message: a string, or nothing at all."""
    if part is None:
        return ""
    if not isinstance(part, dict):
        raise ProviderError()
    text = part.get(field)
    if not text:
        return ""
    if not isinstance(text, str):
        raise ProviderError()
    return text


class OpenAICompatibleProvider:
    """Any endpoint that speaks OpenAI's chat completions, over plain HTTP.

    Only what is billed or forwarded is read from its answers: the text, whether
    it finished, and the usage it reported.
    """

    name = "openai"
    label = _("OpenAI-compatible model")

    async def stream(
        self,
        *,
        messages: list[dict[str, str]],
        model: str,
        max_tokens: int,
        **options: object,
    ) -> AsyncIterator[StreamEvent]:
        body = _request_body(
            messages=messages,
            model=model,
            max_tokens=max_tokens,
            stream=True,
            options=options,
        )
        usage: ProviderUsage | None = None
        finished = done = False
        try:
            async with (
                upstream.chat_completion(body) as response,
                asyncio.timeout(None) as after_done,
            ):
                async for data in upstream.sse_data(response.aiter_bytes()):
                    if done:
                        continue
                    if data.startswith(b"[DONE]"):
                        # Read on to the end of the body, briefly, so that the
                        # connection goes back to the pool. No delta is yielded
                        # from here on, so this deadline cannot hit the consumer.
                        done = True
                        after_done.reschedule(
                            asyncio.get_running_loop().time() + DRAIN_SECONDS
                        )
                        continue
                    chunk = _json_object(data)
                    if chunk.get("usage") is not None:
                        usage = _usage(chunk["usage"])
                    for choice in _choices(chunk):
                        if choice.get("finish_reason"):
                            finished = True
                        text = _text(choice.get("delta"), "content")
                        if text:
                            yield text
        except TimeoutError:
            # Only the drain after `[DONE]` has this deadline; the answer is whole.
            if not done:
                raise
        except httpx.TimeoutException as error:
            # Before the answer or in its middle (a stall): the same for the client.
            raise ProviderTimeout() from error
        except httpx.HTTPError as error:
            raise ProviderError() from error
        if not finished:
            yield StreamCut()
        if usage is not None:
            yield usage

    async def complete(
        self,
        *,
        messages: list[dict[str, str]],
        model: str,
        max_tokens: int,
        **options: object,
    ) -> Completion:
        body = _request_body(
            messages=messages,
            model=model,
            max_tokens=max_tokens,
            stream=False,
            options=options,
        )
        try:
            async with upstream.chat_completion(body) as response:
                answer = _json_object(await response.aread())
        except httpx.TimeoutException as error:
            raise ProviderTimeout() from error
        except httpx.HTTPError as error:
            raise ProviderError() from error
        choice = next(iter(_choices(answer)), {})
        reason = choice.get("finish_reason")
        return Completion(
            text=_text(choice.get("message"), "content"),
            finish_reason=str(reason) if reason else None,
            usage=_usage(answer.get("usage")),
        )


PROVIDERS: dict[str, type] = {"demo": DemoProvider, "openai": OpenAICompatibleProvider}


def get_provider() -> Provider:
    return PROVIDERS[settings.LLM_PROVIDER]()


def provider_label() -> str:
    return str(PROVIDERS[settings.LLM_PROVIDER].label)
