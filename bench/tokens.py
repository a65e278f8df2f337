"""Measure token counting throughput: `points.tokens.count_tokens` against tiktoken.

Ours is `count_tokens(text, "gpt-4o")`, the call the app makes. The baseline is
tiktoken's own `Encoding.encode(text)` on the very same Encoding object
(`points.tokens.get_encoding("o200k_base")`), so both run the same Rust BPE over the
same ranks. Texts are English and Korean, 100 B, 4 KB and 64 KB of UTF-8, built
deterministically by repeating varied sentences. Each measurement times a batch of
calls long enough to read reliably; ours and tiktoken alternate within each repeat
(the order flips every repeat) and the median of the repeats is reported, in MB/s
(10^6 bytes of UTF-8 per second). Both must give the same number of tokens.

Run:

    .venv/bin/python bench/tokens.py [--repeats 9] [--batch-seconds 0.02]

No database and no Django settings are needed: points.tokens imports only tiktoken
and the standard library.
"""

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
MODEL = "gpt-4o"
ENCODING = "o200k_base"
SIZES = (("100 B", 100), ("4 KB", 4 * 1024), ("64 KB", 64 * 1024))
GOAL_RATIO = 0.9

ENGLISH_SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the riverbank.",
    "Points are held before a reply starts and captured when it ends.",
    "In 2024, about 37% of requests used fewer than 1,500 tokens.",
    'She asked, "Can you summarise the report by Friday afternoon?"',
    "Errors like HTTP 429 mean the provider wants us to slow down.",
    "def count(text: str) -> int: return len(text.split())",
    "Tokenizers split rare words such as 'antidisestablishmentarianism' apart.",
    "Meet me at 10:45 a.m. on the 3rd floor, room B-12.",
)
KOREAN_SENTENCES = (
    "오늘 날씨가 정말 좋아서 한강 공원에 산책을 다녀왔습니다.",
    "포인트는 응답이 시작되기 전에 예약되고 끝나면 정산됩니다.",
    "2024년에는 요청의 약 37%가 1,500 토큰 미만이었습니다.",
    '그녀는 "금요일 오후까지 보고서를 요약해 줄 수 있나요?"라고 물었다.',
    "인공지능 모델의 응답 속도는 서버 상태에 따라 달라질 수 있습니다.",
    "회의는 3층 B-12호에서 오전 10시 45분에 시작합니다.",
    "맛있는 김치찌개를 끓이려면 잘 익은 김치와 돼지고기가 필요해요.",
    "토크나이저는 드문 단어를 여러 조각으로 나누어 처리합니다.",
)


@dataclass(frozen=True)
class Row:
    language: str
    size_label: str
    size_bytes: int
    tokens: int
    ours_mb_s: float
    tiktoken_mb_s: float
    counts_agree: bool

    @property
    def ratio(self) -> float:
        return self.ours_mb_s / self.tiktoken_mb_s


def build_text(sentences: Sequence[str], size: int) -> str:
    """Return sentences repeated in turn, cut to at most `size` UTF-8 bytes."""
    parts: list[str] = []
    length = 0
    index = 0
    while length < size:
        sentence = sentences[index % len(sentences)]
        # Every third sentence ends a paragraph, so newlines are tokenized too.
        separator = "\n" if index % 3 == 2 else " "
        parts.append(sentence + separator)
        length += len((sentence + separator).encode())
        index += 1
    # Cutting at a byte count may split a character; drop its partial bytes.
    return "".join(parts).encode()[:size].decode(errors="ignore")


def time_batch(function: Callable[[str], object], text: str, calls: int) -> float:
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            function(text)
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def calls_for(function: Callable[[str], object], text: str, seconds: float) -> int:
    """Return a number of calls (a power of two) that takes at least `seconds`."""
    calls = 1
    while time_batch(function, text, calls) < seconds:
        calls *= 2
    return calls


def measure(
    *,
    ours: Callable[[str], object],
    baseline: Callable[[str], object],
    text: str,
    repeats: int,
    batch_seconds: float,
) -> tuple[float, float]:
    """Return the median MB/s of ours and of the baseline, measured in turns."""
    size = len(text.encode())
    calls = {
        "ours": calls_for(ours, text, batch_seconds),
        "baseline": calls_for(baseline, text, batch_seconds),
    }
    functions = {"ours": ours, "baseline": baseline}
    rates: dict[str, list[float]] = {"ours": [], "baseline": []}
    for repeat in range(repeats):
        order = ["ours", "baseline"] if repeat % 2 == 0 else ["baseline", "ours"]
        for name in order:
            elapsed = time_batch(functions[name], text, calls[name])
            rates[name].append(size * calls[name] / elapsed / 1e6)
    return statistics.median(rates["ours"]), statistics.median(rates["baseline"])


def run(repeats: int, batch_seconds: float) -> list[Row]:
    sys.path.insert(0, str(PROJECT_DIR))
    from points.tokens import count_tokens, get_encoding

    encoding = get_encoding(ENCODING)
    if encoding is None:
        raise SystemExit(f"The {ENCODING} encoding could not be loaded; see the log.")

    def ours(text: str) -> int:
        return count_tokens(text, MODEL)

    baseline = encoding.encode
    rows = []
    for language, sentences in (
        ("English", ENGLISH_SENTENCES),
        ("Korean", KOREAN_SENTENCES),
    ):
        for size_label, size in SIZES:
            text = build_text(sentences, size)
            tokens = ours(text)
            ours_rate, baseline_rate = measure(
                ours=ours,
                baseline=baseline,
                text=text,
                repeats=repeats,
                batch_seconds=batch_seconds,
            )
            rows.append(
                Row(
                    language=language,
                    size_label=size_label,
                    size_bytes=len(text.encode()),
                    tokens=tokens,
                    ours_mb_s=ours_rate,
                    tiktoken_mb_s=baseline_rate,
                    counts_agree=tokens == len(baseline(text)),
                )
            )
    return rows


def print_rows(rows: list[Row], repeats: int) -> None:
    print(
        f"count_tokens(text, {MODEL!r}) vs tiktoken Encoding.encode(text), "
        f"{ENCODING}; median of {repeats} alternating repeats; MB = 10^6 bytes; "
        f"goal ours/tiktoken >= {GOAL_RATIO}"
    )
    header = (
        f"{'text':<8} {'size':>6} {'bytes':>6} {'tokens':>7} {'ours MB/s':>10} "
        f"{'tiktoken MB/s':>14} {'ours/tiktoken':>14} {'same count':>11} "
        f"{'goal':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.language:<8} {row.size_label:>6} {row.size_bytes:>6} "
            f"{row.tokens:>7} {row.ours_mb_s:>10.2f} {row.tiktoken_mb_s:>14.2f} "
            f"{row.ratio:>14.2f} {'yes' if row.counts_agree else 'NO':>11} "
            f"{'met' if row.ratio >= GOAL_RATIO else 'below':>6}"
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Token counting MB/s: points.tokens.count_tokens against tiktoken's own "
            "Encoding.encode on the same encoding, English and Korean, 100 B to 64 KB."
        )
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=9,
        help="alternating measurements per text; the median is shown (default: 9)",
    )
    parser.add_argument(
        "--batch-seconds",
        type=float,
        default=0.02,
        help="least time one timed batch of calls takes (default: 0.02)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.batch_seconds <= 0:
        parser.error("--repeats and --batch-seconds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = run(args.repeats, args.batch_seconds)
    print_rows(rows, args.repeats)
    return 0 if all(row.counts_agree for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
