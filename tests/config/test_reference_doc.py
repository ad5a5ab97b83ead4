"""docs/configuration.md lists every key of the config model, with its type, default and a
meaning (scripts/config_reference.py generates the table and keeps the meanings)."""

from __future__ import annotations

from scripts import config_reference as reference


def test_the_doc_lists_every_key_with_its_type_default_and_meaning() -> None:
    issues = reference.problems(reference.DOC.read_text())
    assert not issues, (
        "docs/configuration.md is out of date; run `python scripts/config_reference.py "
        "--write` and fill in the meanings:\n" + "\n".join(issues)
    )


def test_a_key_missing_from_the_doc_is_named() -> None:
    text = reference.DOC.read_text()
    line = next(row for row in text.splitlines() if row.startswith("| `proxy.send_timeout` |"))
    issues = reference.problems(text.replace(line + "\n", ""))
    assert issues == ["proxy.send_timeout: not in docs/configuration.md"]


def test_a_stale_default_and_an_empty_meaning_are_named() -> None:
    text = reference.DOC.read_text()
    line = next(row for row in text.splitlines() if row.startswith("| `proxy.send_timeout` |"))
    stale = "| `proxy.send_timeout` | duration | `31s` |  |"
    issues = reference.problems(text.replace(line, stale))
    assert issues == [
        "proxy.send_timeout: the doc says duration / `31s`, the model duration / `30s`",
        "proxy.send_timeout: no meaning given",
    ]


def test_regenerating_keeps_the_meanings() -> None:
    text = reference.DOC.read_text()
    assert reference.render(text) == text




def test_units_are_written_as_in_the_file() -> None:
    rows = {row.key: row for row in reference.rows()}
    assert (rows["proxy.max_request_body"].type, rows["proxy.max_request_body"].default) == (
        "size", "`10MiB`"
    )
    assert rows["proxy.header_timeout"].default == "`10s`"
    assert rows["routes[].strategy (canary).steps[].hold"].type == "duration or `manual`"
    assert rows["backends.NAME.url"].default == "required"
