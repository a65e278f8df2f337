"""Model providers: the offline demo model and any OpenAI-compatible endpoint.

A provider streams the answer as text deltas and ends, at most once, with the
usage the provider itself reported. Failures surface as `ProviderError`.
"""

import asyncio
import hashlib
import re
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import httpx
import openai
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from chat.exceptions import ProviderError, ProviderTimeout
from points.tokens import encoding_name_for, get_encoding

HANGUL = re.compile(r"[\uac00-\ud7a3]")
GREETING = re.compile(r"^\s*(안녕|hello|hi|hey|good (morning|evening))", re.I)
PIECE = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class ProviderUsage:
    """The usage a provider reported, as it sent it: the ledger decides if it counts."""

    prompt_tokens: object
    completion_tokens: object


@dataclass(frozen=True)
class StreamCut:
    """The stream ended without saying the answer was finished (no finish reason)."""


StreamEvent = str | ProviderUsage | StreamCut


class Provider(Protocol):
    name: str

    def stream(
        self,
        *,
        messages: list[dict[str, str]],
        model: str,
        max_tokens: int,
        **options: object,
    ) -> AsyncIterator[StreamEvent]: ...


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
        question = next(
            (m["content"] for m in reversed(messages) if m["role"] == "user"), ""
        )
        answer = truncate_to_tokens(demo_answer(question), model, max_tokens)
        delay = settings.DEMO_STREAM_DELAY_MS / 1000
        for piece in PIECE.findall(answer):
            if delay:
                await asyncio.sleep(delay)
            yield piece


_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = (
    weakref.WeakKeyDictionary()
)


def _client() -> openai.AsyncOpenAI:
    """Return this event loop's client for the configured endpoint.

    Building a client costs about 20 ms (its TLS context) and a new connection per
    turn; one client per loop keeps both off the time to the first token. A client
    is bound to the loop it was made on, hence the key.
    """
    config = (
        settings.LLM_BASE_URL,
        settings.LLM_API_KEY or "unused",
        settings.LLM_TIMEOUT,
        settings.LLM_MAX_RETRIES,
    )
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    if config not in per_loop:
        base_url, api_key, timeout, max_retries = config
        per_loop[config] = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )
    return per_loop[config]


class OpenAICompatibleProvider:
    """Any endpoint that speaks OpenAI's chat completions, through the openai SDK."""

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
        client = _client()
        usage: ProviderUsage | None = None
        finished = False
        try:
            stream = await client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                stream=True,
                stream_options={"include_usage": True},
                **options,
            )
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        usage = ProviderUsage(
                            prompt_tokens=getattr(chunk.usage, "prompt_tokens", None),
                            completion_tokens=getattr(
                                chunk.usage, "completion_tokens", None
                            ),
                        )
                    for choice in chunk.choices or ():
                        if choice.finish_reason:
                            finished = True
                        if choice.delta is not None and choice.delta.content:
                            if not isinstance(choice.delta.content, str):
                                raise ProviderError()
                            yield choice.delta.content
        except (openai.APITimeoutError, httpx.TimeoutException) as error:
            # The SDK maps a timeout only before the stream starts; a stall in the
            # middle of the answer arrives as httpx's own exception.
            raise ProviderTimeout() from error
        except openai.APIStatusError as error:
            raise ProviderError(upstream_status=error.status_code) from error
        except (openai.APIError, httpx.HTTPError) as error:
            raise ProviderError() from error
        except (ValueError, TypeError, AttributeError) as error:
            # A chunk that is not JSON, or not shaped like one (the SDK builds its
            # models without validating them).
            raise ProviderError() from error
        if not finished:
            yield StreamCut()
        if usage is not None:
            yield usage


PROVIDERS: dict[str, type] = {"demo": DemoProvider, "openai": OpenAICompatibleProvider}


def get_provider() -> Provider:
    return PROVIDERS[settings.LLM_PROVIDER]()


def provider_label() -> str:
    return str(PROVIDERS[settings.LLM_PROVIDER].label)
