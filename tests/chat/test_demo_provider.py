"""The offline demo model answers at the same pace, streamed or whole."""

import time

from asgiref.sync import async_to_sync

from chat.providers import PIECE, DemoProvider, demo_answer

MESSAGES = [{"role": "user", "content": "How are points charged?"}]


def test_a_whole_answer_takes_as_long_as_its_stream(settings) -> None:
    settings.DEMO_STREAM_DELAY_MS = 20
    pieces = len(PIECE.findall(demo_answer(MESSAGES[-1]["content"])))

    started = time.monotonic()
    completion = async_to_sync(DemoProvider().complete)(
        messages=MESSAGES, model="eora-demo", max_tokens=1000
    )

    # At least a delay per piece, as the stream waits before each one.
    assert time.monotonic() - started >= pieces * 0.020
    assert completion.text == demo_answer(MESSAGES[-1]["content"])
    assert completion.finish_reason == "stop"
