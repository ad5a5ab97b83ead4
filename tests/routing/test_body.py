"""Body rules read the raw bytes before parsing: a literal test first, escapes always parsed."""

from __future__ import annotations

import pytest

from router.routing.body import BodyFields
from router.routing.matching import MatchRule

RULE = MatchRule("/v1", body=(("model", "meta-llama/Llama-3-8B"),))


@pytest.mark.parametrize(
    ("raw", "matches"),
    [
        (b'{"model": "meta-llama/Llama-3-8B", "messages": []}', True),
        (b'{"model":"meta-llama\\/Llama-3-8B"}', True),  # "/" escaped, as PHP writes it
        (b'{"model": "meta-llama\\u002fLlama-3-8B"}', True),  # a unicode escape
        (b'{"model": "mistral-7b"}', False),
        (b'{"messages": [{"content": "meta-llama/Llama-3-8B"}], "model": "x"}', False),
        (b'{"nested": {"model": "meta-llama/Llama-3-8B"}}', False),  # not top level
        (b'["model", "meta-llama/Llama-3-8B"]', False),  # not an object
        (b'{"model": "meta-llama/Llama-3-8B"', False),  # not JSON
        (b"", False),
    ],
    ids=["literal", "escaped-slash", "unicode-escape", "other-model", "value-elsewhere",
         "nested", "array", "truncated", "empty"],
)
def test_a_body_rule_on_raw_bytes(raw: bytes, matches: bool) -> None:
    assert RULE.accepts("POST", {}, BodyFields(raw)) is matches


def test_a_body_that_cannot_hold_the_value_is_not_parsed() -> None:
    fields = BodyFields(b'{"model": "mistral-7b", "inputs": [1.0, 2.0]}')
    assert not RULE.accepts("POST", {}, fields)
    assert fields._fields is None  # decided from the bytes alone
    assert fields.get("model") == "mistral-7b" and len(fields) == 2
