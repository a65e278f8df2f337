"""Fake model providers: the boundary the chat tests replace."""

from collections.abc import AsyncIterator

from chat.exceptions import ProviderError
from chat.providers import Completion, ProviderUsage, StreamEvent


class ScriptedProvider:
    """Answer the given deltas, then report `usage` (if any) or fail."""

    name = "scripted"
    label = "Scripted test model"

    def __init__(
        self,
        deltas: list[str],
        usage: ProviderUsage | None = None,
        fail_after: int | None = None,
    ) -> None:
        self.deltas = deltas
        self.usage = usage
        self.fail_after = fail_after
        self.calls: list[dict] = []

    async def stream(
        self,
        *,
        messages: list[dict[str, str]],
        model: str,
        max_tokens: int,
        **options: object,
    ) -> AsyncIterator[StreamEvent]:
        self.calls.append(
            {"messages": messages, "model": model, "max_tokens": max_tokens}
        )
        for index, delta in enumerate(self.deltas):
            if self.fail_after is not None and index == self.fail_after:
                raise ProviderError(upstream_status=500)
            yield delta
        if self.fail_after is not None and self.fail_after >= len(self.deltas):
            raise ProviderError(upstream_status=500)
        if self.usage is not None:
            yield self.usage

    async def complete(
        self,
        *,
        messages: list[dict[str, str]],
        model: str,
        max_tokens: int,
        **options: object,
    ) -> Completion:
        self.calls.append(
            {"messages": messages, "model": model, "max_tokens": max_tokens}
        )
        if self.fail_after is not None:
            raise ProviderError(upstream_status=500)
        return Completion(
            text="".join(self.deltas), finish_reason="stop", usage=self.usage
        )
