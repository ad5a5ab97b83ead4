"""The config reader's own builder (from libyaml's events) gives what PyYAML's safe loader
gives, and leaves what it does not build to PyYAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from router.config.issues import YamlSyntaxError, _FastStrictLoader, read_yaml
from router.config.yaml_events import UnusualYamlError, from_events
from tests.support import ROOT

DOCUMENTS = {
    "scalars": "a: 1\nb: 1.5\nc: true\nd: null\ne: ~\nf: '1'\ng: 0x1F\nh: 2026-01-02\ni: 1_000\n",
    "nesting": "routes:\n- {name: m0, match: {path_prefix: /m0/, headers: {x: 'y'}}}\n"
               "- name: m1\n  list: [1, [2, 3], {k: v}]\n",
    "merge": "base: &b {u: 1, v: 2}\nother: {<<: *b, v: 3}\n",
    "anchor-only": "a: &x {u: 1}\nb: 2\n",
    "int-and-bool-keys": "1: one\ntrue: yes\nnull: nothing\n",
    "quoted-and-block": "a: \"q\\tq\"\nb: |\n  line\n  two\nc: >\n  folded\n  text\n",
    "empty-values": "a:\nb: []\nc: {}\n",
    "explicit-tags": "a: !!str 12\nb: !!float 3\nc: !!set {x, y}\nd: !!binary aGk=\n",
    "alias": "a: &x [1, 2]\nb: *x\n",
    "value-key": "a: {=: 1}\n",
}
PLAIN = ("scalars", "nesting", "int-and-bool-keys", "quoted-and-block", "empty-values")


@pytest.mark.parametrize("text", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_read_yaml_matches_the_safe_loader(text: str) -> None:
    built = read_yaml(text)
    expected = yaml.safe_load(text)
    assert built == expected
    assert repr(built) == repr(expected)  # same types too (1 is not 1.0, nor True)


@pytest.mark.parametrize("name", PLAIN)
def test_plain_documents_are_built_from_events(name: str) -> None:
    loader = _FastStrictLoader(DOCUMENTS[name])
    try:
        assert from_events(loader) == yaml.safe_load(DOCUMENTS[name])
    finally:
        loader.dispose()


@pytest.mark.parametrize("name", ["merge", "anchor-only", "explicit-tags", "alias", "value-key"])
def test_other_documents_are_left_to_pyyaml(name: str) -> None:
    loader = _FastStrictLoader(DOCUMENTS[name])
    try:
        with pytest.raises(UnusualYamlError):
            from_events(loader)
    finally:
        loader.dispose()


def test_more_than_one_document_is_refused() -> None:
    with pytest.raises(YamlSyntaxError, match="expected a single document"):
        read_yaml("a: 1\n---\nb: 2\n")


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_configs_read_as_the_safe_loader_reads_them(path: Path) -> None:
    text = path.read_text()
    assert read_yaml(text) == yaml.safe_load(text)


def test_duplicate_keys_are_refused_deep_in_the_tree() -> None:
    with pytest.raises(YamlSyntaxError, match="line 2, column 25: duplicate key 'b'"):
        read_yaml("routes:\n- {a: {b: 1}, c: {b: 2, b: 3}}\n")
