"""Comparing OpenAI-compatible answers (``compare.mode: openai``): the text, not the bytes.

Two answers to one chat or completion request differ in ids, timestamps and
token counts even when they say the same thing, and a streamed answer is a run
of server-sent events. So this compares what the model wrote: each choice's
``message.content`` (chat), ``text`` (completions), or, for a stream, the
``delta.content`` / ``text`` pieces of every event joined in order. Texts are
whitespace-normalised, then scored with the normalised Levenshtein similarity
(1 - distance / longer length); at or above ``min_text_similarity`` they match.
Pure and exception-free like ``strategies.compare``.
"""

from __future__ import annotations

from typing import Any

import orjson
from rapidfuzz.distance import Levenshtein

from strategies.comparison import Comparison

__all__ = ["answer_texts", "compare_openai", "text_similarity"]

_SHORT = 40


def _choice_text(choice: Any, streamed: bool) -> str | None:
    if type(choice) is not dict:
        return None
    holder = choice.get("delta" if streamed else "message")
    if type(holder) is dict and type(holder.get("content")) is str:
        return str(holder["content"])
    text = choice.get("text")
    return text if type(text) is str else None


def _add_choices(doc: Any, texts: dict[int, list[str]], streamed: bool) -> bool:
    """Append each choice's text to ``texts`` by choice index; False if ``doc`` has no choices."""
    choices = doc.get("choices") if type(doc) is dict else None
    if type(choices) is not list:
        return False
    for position, choice in enumerate(choices):
        text = _choice_text(choice, streamed)
        index = choice.get("index", position) if type(choice) is dict else position
        if text is not None and type(index) is int:
            texts.setdefault(index, []).append(text)
    return True


def _stream_texts(body: bytes) -> dict[int, list[str]] | None:
    texts: dict[int, list[str]] = {}
    seen = False
    for line in body.splitlines():
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            continue
        try:
            seen = _add_choices(orjson.loads(data), texts, streamed=True) or seen
        except orjson.JSONDecodeError:
            return None
    return texts if seen else None


def answer_texts(body: bytes) -> list[str] | None:
    """The text of each choice (by index), whitespace-normalised; None if not such an answer."""
    texts: dict[int, list[str]] | None = {}
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        texts = _stream_texts(body)
    else:
        assert texts is not None
        if not _add_choices(doc, texts, streamed=False):
            texts = None
    if texts is None:
        return None
    return [" ".join("".join(texts[i]).split()) for i in sorted(texts)]


def text_similarity(a: str, b: str) -> float:
    """1 - Levenshtein distance / the longer length (1.0 for two empty texts)."""
    return float(Levenshtein.normalized_similarity(a, b))


def _short(text: str) -> str:
    return repr(text if len(text) <= _SHORT else text[: _SHORT - 3] + "...")


def compare_openai(primary: bytes, shadow: bytes, min_similarity: float) -> Comparison:
    """Compare two 2xx answers' texts; choices pair up by index."""
    p_texts = answer_texts(primary)
    if p_texts is None:
        return Comparison("error", "openai", detail="primary answer has no choices")
    s_texts = answer_texts(shadow)
    if s_texts is None:
        return Comparison("error", "openai", detail="shadow answer has no choices")
    if len(p_texts) != len(s_texts):
        diff = f"choices: primary={len(p_texts)} shadow={len(s_texts)}"
        return Comparison("mismatch", "openai", diff, detail="different number of choices")
    worst, first = 1.0, None
    for index, (p, s) in enumerate(zip(p_texts, s_texts, strict=True)):
        score = 1.0 if p == s else text_similarity(p, s)
        if score < worst:
            worst = score
        if score < min_similarity and first is None:
            first = f"choices[{index}]: similarity {score:.3f} "
            first += f"primary={_short(p)} shadow={_short(s)}"
    detail = f"text similarity {worst:.3f} (min {min_similarity:g})"
    if first is not None:
        return Comparison("mismatch", "openai", first, detail=detail)
    return Comparison("match", "openai", detail=detail)
