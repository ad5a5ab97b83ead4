"""Shadow ``compare.mode: openai``: LLM answers compared by their text, streamed or not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from strategies.compare import Comparator
from strategies.compare_openai import answer_texts, text_similarity
from strategies.shadow.strategy import CompareSpec

PATH = "/v1/chat/completions"


def chat(*contents: str, answer_id: str = "chatcmpl-1", tokens: int = 9) -> bytes:
    """A non-streamed chat completion with one choice per content."""
    choices = [
        {"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": "stop"}
        for i, c in enumerate(contents)
    ]
    usage = {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": 5 + tokens}
    return json.dumps({"id": answer_id, "created": 1, "choices": choices, "usage": usage}).encode()


def stream(*pieces: str, choice: int = 0) -> bytes:
    """A streamed chat completion: a role event, one event per piece, a usage event, [DONE]."""
    def event(doc: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(doc).encode() + b"\n\n"

    head = {"choices": [{"index": choice, "delta": {"role": "assistant"}}]}
    out = [event(head)]
    out += [event({"choices": [{"index": choice, "delta": {"content": p}}]}) for p in pieces]
    out.append(event({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}))
    return b"".join(out) + b"data: [DONE]\n\n"


def completion(text: str) -> bytes:
    """A legacy (non-chat) completion."""
    return json.dumps({"choices": [{"index": 0, "text": text}]}).encode()


def compare(primary: bytes, shadow: bytes, min_similarity: float = 1.0, status: int = 200) -> Any:
    spec = CompareSpec(mode="openai", min_text_similarity=min_similarity)
    return Comparator(spec).compare(primary, shadow, path=PATH, shadow_status=status)


@pytest.mark.parametrize(
    ("primary", "shadow", "min_similarity", "outcome"),
    [
        (chat("Paris."), chat("Paris.", answer_id="other", tokens=3), 1.0, "match"),
        (chat("The capital is  Paris.\n"), chat(" The capital is Paris."), 1.0, "match"),
        (chat("The capital is Paris."), chat("The capital is Paris!"), 1.0, "mismatch"),
        (chat("The capital is Paris."), chat("The capital is Paris!"), 0.9, "match"),
        (chat("The capital is Paris."), chat("I do not know."), 0.9, "mismatch"),
        (stream("The cap", "ital is", " Paris."), chat("The capital is Paris."), 1.0, "match"),
        (chat("The capital is Paris."), stream("The capital", " is Rome."), 0.95, "mismatch"),
        (completion("42"), completion("42"), 1.0, "match"),
        (chat("a", "b"), chat("a"), 0.5, "mismatch"),
        (chat("a"), b'{"predictions": [1]}', 0.5, "error"),
        (b"not json, no events", chat("a"), 0.5, "error"),
    ],
    ids=[
        "ids-and-usage-ignored", "whitespace-normalised", "one-char-differs-exact",
        "one-char-differs-close", "different-answer", "stream-vs-json", "json-vs-stream-differs",
        "completions-text", "choice-count", "shadow-not-openai", "primary-not-openai",
    ],
)
def test_openai_comparison(
    primary: bytes, shadow: bytes, min_similarity: float, outcome: str
) -> None:
    result = compare(primary, shadow, min_similarity)
    assert result.outcome == outcome, result
    assert result.protocol == "openai"
    if outcome == "mismatch":
        assert result.first_difference


def test_a_failing_shadow_is_an_error_before_any_text_is_read() -> None:
    result = compare(chat("a"), b"", status=503)
    assert result.outcome == "error" and "503" in result.detail


def test_streamed_choices_are_joined_per_index() -> None:
    body = stream("Hel", "lo", choice=1) + stream(" wor", "ld", choice=0)
    assert answer_texts(body) == ["world", "Hello"]


def test_similarity_is_one_minus_the_normalised_edit_distance() -> None:
    assert text_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert text_similarity("", "") == 1.0
    mismatch = compare(chat("kitten"), chat("sitting"), 0.6)
    assert "similarity 0.571" in (mismatch.first_difference or "")
