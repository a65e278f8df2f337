"""Token counting: `points.tokens.count_tokens` against tiktoken on the same call.

Ours is `count_tokens(text, "gpt-4o")`, what the app calls; the baseline is
`len(encoding.encode_ordinary(text))` on the very same tiktoken `Encoding` (the
call ours makes, without our lookup of the encoding). English and Korean texts of
100 B, 4 KB and 64 KB; the two alternate, and the best of the repeats is shown
(the least disturbed by other work on the machine).

    .venv/bin/python -m bench.tokens [--repeats 15]
"""

import argparse
import itertools
import time
from collections.abc import Callable

from bench.harness import print_table
from points.tokens import count_tokens, encoding_name_for, get_encoding

MODEL = "gpt-4o"
SIZES = {"100 B": 100, "4 KB": 4096, "64 KB": 65536}
SENTENCES = {
    "English": (
        "Points are held before a reply starts and captured when it ends. "
        "In 2024, about 37% of requests used fewer than 1,500 tokens.\n"
        'She asked, "Can you summarise the report by Friday afternoon?" '
    ),
    "Korean": (
        "포인트는 응답이 시작되기 전에 예약되고 끝나면 정산됩니다. "
        "2024년에는 요청의 약 37%가 1,500 토큰 미만이었습니다.\n"
        '그녀는 "금요일 오후까지 보고서를 요약해 줄 수 있나요?"라고 물었다. '
    ),
}
BATCH_SECONDS = 0.02


def text_of(sentences: str, size: int) -> str:
    repeated = sentences * (size // len(sentences.encode()) + 1)
    return repeated.encode()[:size].decode(errors="ignore")


def seconds_per_call(function: Callable[[str], int], text: str, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function(text)
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    repeats = parser.parse_args().repeats
    encoding = get_encoding(encoding_name_for(MODEL))

    def ours(text: str) -> int:
        return count_tokens(text, MODEL)

    def tiktoken(text: str) -> int:
        return len(encoding.encode_ordinary(text))

    rows = []
    for (language, sentences), (label, size) in itertools.product(
        SENTENCES.items(), SIZES.items()
    ):
        text = text_of(sentences, size)
        assert ours(text) == tiktoken(text)
        calls = max(1, int(BATCH_SECONDS / seconds_per_call(tiktoken, text, 3)))
        timings: dict[Callable, list[float]] = {ours: [], tiktoken: []}
        for repeat in range(repeats):
            pair = (ours, tiktoken) if repeat % 2 == 0 else (tiktoken, ours)
            for function in pair:
                timings[function].append(seconds_per_call(function, text, calls))
        mb_s = [len(text.encode()) / min(timings[f]) / 1e6 for f in timings]
        rows.append((language, label, ours(text), *mb_s, mb_s[0] / mb_s[1]))
    print(
        f"count_tokens(text, {MODEL!r}) vs len({encoding.name}.encode_ordinary(text)), "
        f"best of {repeats} alternating repeats, MB = 10^6 bytes"
    )
    print_table(
        ["text", "size", "tokens", "ours MB/s", "tiktoken MB/s", "ours/tiktoken"],
        rows,
    )


if __name__ == "__main__":
    main()
