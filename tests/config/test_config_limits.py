"""What ``validate`` refuses so that a reload cannot fail later or take the process down
(docs/faults.md).

Issue 14: a 429-byte file of nested aliases took 15 s and 1.3 GB in ``validate`` (item 6);
backend URLs with user info or port 99999 validated and then failed at install (item 2).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from router.config.loader import MAX_CONFIG_BYTES, ConfigError, max_config_bytes, parse_config
from router.config.model import BackendSpec
from router.routing.backends import Backend
from tests.support import ROOT

VALID = """\
backends:
  v1: {url: "http://127.0.0.1:8001"}
routes:
  - {name: r, match: {path_prefix: /}, strategy: {type: direct, backend: v1}}
"""


def alias_bomb(levels: int = 7, width: int = 10) -> str:
    """Each level lists the previous one ``width`` times: ``width ** levels`` leaves, ~430 bytes."""
    lines = ['l0: &l0 ["x"]']
    for level in range(1, levels + 1):
        refs = ",".join([f"*l{level - 1}"] * width)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n" + VALID


def _validate(tmp_path: Path, text: str | bytes) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "router.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return subprocess.run(
        [sys.executable, "-m", "router", "validate", str(path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )


@pytest.mark.e2e
def test_alias_bomb_is_refused_in_one_line(tmp_path: Path) -> None:
    assert len(alias_bomb()) < 600
    result = _validate(tmp_path, alias_bomb())
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert (result.stdout, len(lines)) == ("", 1), lines
    assert "aliases would expand" in lines[0] and "10000" in lines[0]


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="recursive alias"):
        parse_config("loop: &a [*a]\n" + VALID)


def test_a_few_aliases_are_fine() -> None:
    text = VALID.replace(
        'v1: {url: "http://127.0.0.1:8001"}',
        'v1: &b {url: "http://127.0.0.1:8001", timeout: {connect: 1s, read: 5s}}\n  v2: *b',
    )
    config = parse_config(text)
    assert config.backends["v2"] == config.backends["v1"]


@pytest.mark.e2e
def test_a_file_over_one_mib_is_refused_unparsed(tmp_path: Path) -> None:
    padding = "# " + "x" * 1000 + "\n"
    text = VALID + padding * (MAX_CONFIG_BYTES // len(padding) + 1)
    result = _validate(tmp_path, text)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert (result.stdout, len(lines)) == ("", 1), lines
    assert f"over the limit of {MAX_CONFIG_BYTES}" in lines[0]
    with pytest.raises(ConfigError, match="over the limit"):
        parse_config(text)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://user:pw@127.0.0.1:8001", "user info"),
        ("http://127.0.0.1:99999", "port must be"),
        ("http://127.0.0.1:0", "port must be"),
        ("http://127.0.0.1:80a", "port must be"),
        ("https://127.0.0.1:8001", "http://"),
        ("ftp://127.0.0.1", "http://"),
        ("http://a..b:8001", "invalid host name"),
        ("http://127.0.0.1:8001/m\u00e9", "printable ASCII"),
        ("http://127.0.0.1:8001/a b", "printable ASCII"),
    ],
)
def test_validate_refuses_backend_urls_the_pool_cannot_use(
    tmp_path: Path, url: str, reason: str
) -> None:
    result = _validate(tmp_path, VALID.replace("http://127.0.0.1:8001", url))
    assert result.returncode == 1
    assert result.stderr.startswith("backends.v1.url: "), result.stderr
    assert reason in result.stderr


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8001", "http://[::1]:8001/base/", "http://model.internal"]
)
def test_usable_backend_urls_pass_and_build(url: str) -> None:
    spec = BackendSpec(url=url)
    assert spec.url == url.rstrip("/")
    assert Backend("b", spec).pool.url == spec.url  # what a reload builds from it


def test_the_size_limit_can_be_raised_for_a_platform_with_thousands_of_routes() -> None:
    padding = "# " + "x" * 1000 + "\n"
    text = VALID + padding * (MAX_CONFIG_BYTES // len(padding) + 1)
    config = parse_config(text, env={"ROUTER_MAX_CONFIG_BYTES": "2MiB"})
    assert config.backends
    with pytest.raises(ConfigError, match=r"over the limit of 1048576 .*ROUTER_MAX_CONFIG_BYTES"):
        parse_config(text, env={"ROUTER_MAX_CONFIG_BYTES": "not a size"})
    assert max_config_bytes({}) == MAX_CONFIG_BYTES
    assert max_config_bytes({"ROUTER_MAX_CONFIG_BYTES": "4096"}) == 4096
