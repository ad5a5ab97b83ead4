"""Config loading and validation (docs/configuration.md): every error, with its place."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import yaml

import strategies
from router.config.loader import (
    ConfigError,
    ConfigIssue,
    load_config,
    parse_config,
    run_validate,
)
from router.config.model import Config
from router.config.schema import config_json_schema
from strategies.base import StrategySpec
from strategies.canary.strategy import CanarySpec
from strategies.shadow.strategy import ShadowSpec
from strategies.units import parse_duration, parse_size

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config").glob("*.yaml"))
BUILTIN_TYPES = ("blue_green", "canary", "direct", "shadow")

BACKENDS = """\
backends:
  iris-v1: {url: http://127.0.0.1:8001}
  iris-v2: {url: http://127.0.0.1:8002}
"""


def doc(strategy: str, head: str = "", backends: str = BACKENDS, more_routes: str = "") -> str:
    """A small file: ``head`` lines, two backends, one route ``iris`` with ``strategy``."""
    return f"{head}{backends}routes:\n  - name: iris\n    strategy: {strategy}\n{more_routes}"


CANARY = "{type: canary, stable: iris-v1, candidate: iris-v2"
DIRECT = "{type: direct, backend: iris-v1}"


def issues_of(text: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The issue lines ``parse_config`` raises for ``text`` (fails if it loads)."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=env or {})
    return [str(issue) for issue in info.value.issues]


# --- examples and units ---------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_config_loads(path: Path) -> None:
    loaded = load_config(path, env={})
    assert loaded.config.routes
    assert loaded.version == hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    assert run_validate(str(path)) == (0, "ok")


def test_examples_cover_the_expected_files() -> None:
    assert {"example.yaml", "demo.yaml", "minimal.yaml"} <= {p.name for p in EXAMPLES}


def test_example_has_every_builtin_strategy_and_no_token_by_default() -> None:
    config = load_config(ROOT / "config" / "example.yaml", env={}).config
    assert sorted(r.strategy.type for r in config.routes) == sorted(BUILTIN_TYPES)
    assert config.admin.token is None
    assert config.listen == "0.0.0.0:8080"
    with_token = load_config(ROOT / "config" / "example.yaml", env={"ROUTER_ADMIN_TOKEN": "s3"})
    token = with_token.config.admin.token
    assert token is not None and token.get_secret_value() == "s3"


def test_demo_config_ramps_iris_and_keeps_state_in_the_repo() -> None:
    config = load_config(ROOT / "config" / "demo.yaml", env={}).config
    iris, default = config.routes
    assert isinstance(iris.strategy, CanarySpec)
    assert iris.match.path_prefix == "/v2/models/iris"
    assert [s.weight for s in iris.strategy.steps or ()] == [10, 25, 50, 100]
    assert iris.strategy.analysis is not None and iris.strategy.analysis.max_p99_latency == 1.0
    assert default.strategy.type == "direct"
    assert config.state.path == str(ROOT / ".traffic-router" / "demo-state.json")
    assert (config.listen, config.admin.listen) == ("127.0.0.1:8080", "127.0.0.1:9901")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1.5", 1.5), (2, 2.0)],
    ids=["ms", "s", "m", "h", "bare-decimal", "number"],
)
def test_durations_parse(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds
    config = parse_config(doc(DIRECT, head=f"proxy: {{header_timeout: {text}}}\n"), env={})
    assert config.proxy.header_timeout == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("10MiB", 10 * 1024 * 1024), ("512KiB", 512 * 1024), ("1MB", 1_000_000), (4096, 4096)],
    ids=["MiB", "KiB", "MB", "bytes"],
)
def test_sizes_parse(text: str | int, size: int) -> None:
    assert parse_size(text) == size
    config = parse_config(doc(DIRECT, head=f"proxy: {{max_request_body: {text}}}\n"), env={})
    assert config.proxy.max_request_body == size


# --- environment substitution ---------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "env", "expected"),
    [
        ("${TOKEN}", {"TOKEN": "abc"}, "abc"),
        ("${TOKEN:-fallback}", {}, "fallback"),
        ("${TOKEN:-fallback}", {"TOKEN": ""}, "fallback"),
        ("${TOKEN:-fallback}", {"TOKEN": "set"}, "set"),
        ("pre-${TOKEN}-post", {"TOKEN": "x"}, "pre-x-post"),
        ("$${TOKEN}", {"TOKEN": "x"}, "${TOKEN}"),
        ("${TOKEN}", {"TOKEN": "a: b\n- [c"}, "a: b\n- [c"),
    ],
    ids=["set", "default-unset", "default-empty", "set-beats-default", "embedded", "escaped",
         "no-yaml-injection"],
)
def test_env_substitution(token: str, env: dict[str, str], expected: str) -> None:
    config = parse_config(doc(DIRECT, head=f"admin: {{token: '{token}'}}\n"), env=env)
    assert config.admin.token is not None
    assert config.admin.token.get_secret_value() == expected


def test_env_default_empty_means_no_token() -> None:
    config = parse_config(doc(DIRECT, head="admin: {token: '${T:-}'}\n"), env={})
    assert config.admin.token is None


def test_env_substitution_reaches_strategy_sections() -> None:
    config = parse_config(doc("{type: direct, backend: '${B}'}"), env={"B": "iris-v2"})
    assert config.routes[0].strategy.model_dump()["backend"] == "iris-v2"


def test_missing_env_var_is_reported_once_at_its_place() -> None:
    text = doc(DIRECT, head="admin: {token: '${TOKEN}'}\n", backends=(
        "backends:\n  iris-v1: {url: '${IRIS_URL}'}\n"
    ))
    assert issues_of(text) == [
        "admin.token: environment variable TOKEN is not set",
        "backends.iris-v1.url: environment variable IRIS_URL is not set",
    ]


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TR_TEST_TOKEN", "from-env")
    config = parse_config(doc(DIRECT, head="admin: {token: '${TR_TEST_TOKEN}'}\n"))
    assert config.admin.token is not None
    assert config.admin.token.get_secret_value() == "from-env"


# --- YAML syntax ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\nb: [1, 2\n", "line 3, column 1: expected ',' or ']', but got '<stream end>' "
         "(while parsing a flow sequence at line 2, column 4)"),
        ("a: b: c\n", "line 1, column 5: mapping values are not allowed here"),
        ("a:\n\tb: 1\n", "line 2, column 1: found character '\\t' that cannot start any token "
         "(while scanning for the next token)"),
        ("backends: {}\nbackends: {}\n", "line 2, column 1: duplicate key 'backends'"),
        ("a: !!python/object:os.system x\n", "line 1, column 4: could not determine a "
         "constructor for the tag 'tag:yaml.org,2002:python/object:os.system'"),
    ],
    ids=["unclosed-list", "nested-mapping", "tab", "duplicate-key", "unsafe-tag"],
)
def test_yaml_syntax_error_names_line_and_column(text: str, expected: str) -> None:
    assert issues_of(text) == [expected]


def test_yaml_merge_keys_are_not_duplicates() -> None:
    text = doc(DIRECT, backends=(
        "backends:\n  iris-v1: &base {url: http://127.0.0.1:8001, max_connections: 5}\n"
        "  iris-v2: {<<: *base, url: http://127.0.0.1:8002}\n"
    ))
    config = parse_config(text, env={})
    assert config.backends["iris-v2"].max_connections == 5


# --- validation errors ----------------------------------------------------------------

STEPS_120 = CANARY + ", steps: [{weight: 5, hold: 2m}, {weight: 25, hold: 10m}, " \
    "{weight: 120, hold: 5m}]}"

ERROR_CASES: list[tuple[str, str, list[str]]] = [
    ("step-weight-range", doc(STEPS_120),
     ["routes[0].strategy.steps[2].weight: must be between 0 and 100 (got 120)"]),
    ("unknown-backend", doc("{type: canary, stable: iris-v1, candidate: iris-v3}"),
     ["routes[0].strategy.candidate: unknown backend 'iris-v3' (known: iris-v1, iris-v2)"]),
    ("unknown-shadow-backend", doc("{type: shadow, primary: iris-v1, shadows: [iris-v2, fr]}"),
     ["routes[0].strategy.shadows[1]: unknown backend 'fr' (known: iris-v1, iris-v2)"]),
    ("unknown-strategy", doc("{type: foo}"),
     ["routes[0].strategy.type: unknown strategy 'foo' "
      "(known: blue_green, canary, direct, shadow)"]),
    ("missing-type", doc("{backend: iris-v1}"), ["routes[0].strategy.type: required"]),
    ("strategy-not-mapping", doc("direct"),
     ["routes[0].strategy: must be a mapping (got 'direct')"]),
    ("weight-and-steps", doc(CANARY + ", weight: 5, steps: [{weight: 5, hold: 1m}]}"),
     ["routes[0].strategy: give either weight or steps, not both"]),
    ("duplicate-route", doc(DIRECT, more_routes=f"  - name: iris\n    strategy: {DIRECT}\n"),
     ["routes[1].name: duplicate route name 'iris' (first at routes[0])"]),
    ("unknown-top-key", doc(DIRECT, head="colour: blue\n"), ["colour: unknown key"]),
    ("unknown-strategy-key", doc("{type: direct, backend: iris-v1, colour: blue}"),
     ["routes[0].strategy.colour: unknown key"]),
    ("unknown-backend-key", doc(DIRECT, backends=(
        "backends:\n  iris-v1: {url: http://127.0.0.1:8001, colour: blue}\n")),
     ["backends.iris-v1.colour: unknown key"]),
    ("missing-url", doc(DIRECT, backends="backends:\n  iris-v1: {max_connections: 3}\n"),
     ["backends.iris-v1.url: required"]),
    ("not-http", doc(DIRECT, backends="backends:\n  iris-v1: {url: 'https://x'}\n"),
     ["backends.iris-v1.url: must be an http:// URL (got 'https://x')"]),
    ("not-an-integer", doc(DIRECT, backends=(
        "backends:\n  iris-v1: {url: http://127.0.0.1:1, max_connections: many}\n")),
     ["backends.iris-v1.max_connections: must be an integer (got 'many')"]),
    ("below-minimum", doc(DIRECT, backends=(
        "backends:\n  iris-v1: {url: http://127.0.0.1:1, max_connections: 0}\n")),
     ["backends.iris-v1.max_connections: must be at least 1 (got 0)"]),
    ("literal", doc(CANARY + ", on_failure: explode}"),
     ["routes[0].strategy.on_failure: must be 'rollback' or 'pause' (got 'explode')"]),
    ("bad-duration", doc(CANARY + ", analysis: {interval: soon}}"),
     ["routes[0].strategy.analysis.interval: "
      "expected a duration like 250ms, 30s, 5m or 1h (got 'soon')"]),
    ("zero-duration", doc(CANARY + ", analysis: {interval: 0s}}"),
     ["routes[0].strategy.analysis.interval: must be greater than 0 (got '0s')"]),
    ("rate-range", doc(CANARY + ", analysis: {max_error_rate: 2}}"),
     ["routes[0].strategy.analysis.max_error_rate: must be between 0 and 1 (got 2)"]),
    ("sticky-both", doc(CANARY + ", sticky: {header: a, cookie: b}}"),
     ["routes[0].strategy.sticky: give exactly one of header, cookie or body_field"]),
    ("bad-listen", doc(DIRECT, head="listen: nowhere\n"),
     ["listen: expected HOST:PORT (got 'nowhere')"]),
    ("bad-cidr", doc(DIRECT, head="proxy: {trusted_proxies: [10.0.0.0/33]}\n"),
     ["proxy.trusted_proxies: '10.0.0.0/33' does not appear to be an IPv4 or IPv6 network"]),
    ("redis-without-url", doc(DIRECT, head="state: {store: redis}\n"),
     ["state.url: required when store is redis"]),
    ("metrics-without-prometheus",
     doc(CANARY + ", analysis: {metrics: [{name: x, query: up, max: 1}]}}"),
     ["routes[0].strategy.analysis.metrics: needs the top-level prometheus key (url, timeout)"]),
    ("metric-without-bound",
     doc(CANARY + ", analysis: {metrics: [{name: x, query: up}]}}",
         head="prometheus: {url: 'http://127.0.0.1:9090'}\n"),
     ["routes[0].strategy.analysis.metrics[0]: metric check 'x' needs max or min"]),
    ("prometheus-not-a-url", doc(DIRECT, head="prometheus: {url: 'ftp://x'}\n"),
     ["prometheus.url: must be an http:// or https:// URL (got 'ftp://x')"]),
    ("unknown-judge", doc(CANARY + ", analysis: {judge: vibes}}"),
     ["routes[0].strategy.analysis.judge: must be 'threshold' or 'sequential' (got 'vibes')"]),
    ("empty-routes", BACKENDS + "routes: []\n", ["routes: must not be empty"]),
    ("empty-backends", f"backends: {{}}\nroutes:\n  - name: a\n    strategy: {DIRECT}\n",
     ["backends: must not be empty"]),
    ("missing-routes", BACKENDS, ["routes: required"]),
    ("route-without-name", BACKENDS + f"routes:\n  - strategy: {DIRECT}\n",
     ["routes[0].name: required"]),
    ("top-level-list", "- a\n- b\n", ["the file must be a mapping (got a list)"]),
    ("empty-file", "# nothing\n", ["the file must be a mapping (got empty)"]),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_each_error_names_its_place_and_problem(text: str, expected: list[str]) -> None:
    assert issues_of(text) == expected


def test_every_error_in_a_file_is_reported_in_file_order() -> None:
    text = doc(
        STEPS_120[:-1] + ", on_failure: explode}",
        head="listen: nowhere\ncolour: blue\n",
        backends="backends:\n  iris-v1: {url: http://127.0.0.1:8001}\n",
        more_routes=(
            "  - name: iris\n    strategy: {type: canary, stable: iris-v1, candidate: iris-v3}\n"
            "  - name: other\n    strategy: {type: foo}\n"
        ),
    )
    assert issues_of(text) == [
        "listen: expected HOST:PORT (got 'nowhere')",
        "colour: unknown key",
        "routes[0].strategy.steps[2].weight: must be between 0 and 100 (got 120)",
        "routes[0].strategy.on_failure: must be 'rollback' or 'pause' (got 'explode')",
        "routes[0].strategy.candidate: unknown backend 'iris-v2' (known: iris-v1)",
        "routes[1].strategy.candidate: unknown backend 'iris-v3' (known: iris-v1)",
        "routes[1].name: duplicate route name 'iris' (first at routes[0])",
        "routes[2].strategy.type: unknown strategy 'foo' "
        "(known: blue_green, canary, direct, shadow)",
    ]


def test_config_error_lists_issues_one_per_line() -> None:
    error = ConfigError([ConfigIssue("a.b", "bad"), ConfigIssue("", "whole file")], "f.yaml")
    assert str(error) == "a.b: bad\nwhole file"
    assert error.path == "f.yaml"
    with pytest.raises(ConfigError) as info:
        parse_config("- a\n", source="mine.yaml")
    assert info.value.path == "mine.yaml"


# --- files: load_config, run_validate, relative paths ---------------------------------


def test_load_config_resolves_relative_paths_against_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "router.yaml"
    path.parent.mkdir()
    path.write_text(
        "state: {path: ../state/s.json}\n"
        + doc("{type: shadow, primary: iris-v1, shadows: [iris-v2], mismatch_log: m.jsonl}")
    )
    loaded = load_config(path, env={})
    assert loaded.config.state.path == str(tmp_path / "state" / "s.json")
    spec = loaded.config.routes[0].strategy
    assert isinstance(spec, ShadowSpec)
    assert spec.mismatch_log == str(tmp_path / "conf" / "m.jsonl")
    assert loaded.raw == path.read_bytes()
    assert loaded.path == path


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    config = parse_config(doc(DIRECT, head="state: {path: /var/lib/tr.json}\n"),
                          base_dir=tmp_path, env={})
    assert config.state.path == "/var/lib/tr.json"


@pytest.mark.parametrize(
    ("content", "code", "output"),
    [
        (doc(DIRECT), 0, "ok"),
        (doc("{type: direct, backend: nope}", head="colour: 1\n"), 1,
         "colour: unknown key\n"
         "routes[0].strategy.backend: unknown backend 'nope' (known: iris-v1, iris-v2)"),
        ("a: [\n", 1, "line 2, column 1: expected the node content, "
         "but found '<stream end>' (while parsing a flow node)"),
        (None, 1, "cannot read {path}: No such file or directory"),
    ],
    ids=["ok", "errors", "yaml", "missing-file"],
)
def test_run_validate(tmp_path: Path, content: str | None, code: int, output: str) -> None:
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    assert run_validate(str(path)) == (code, output.format(path=path))


# --- JSON schema ----------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_schema_is_json_with_a_strategy_union_over_every_type() -> None:
    schema = json.loads(json.dumps(config_json_schema()))
    defs = schema["$defs"]
    route = defs[schema["properties"]["routes"]["items"]["$ref"].rsplit("/", 1)[-1]]
    strategy = route["properties"]["strategy"]
    assert set(strategy["discriminator"]["mapping"]) == set(BUILTIN_TYPES)
    for ref in (item["$ref"] for item in strategy["oneOf"]):
        spec = defs[ref.rsplit("/", 1)[-1]]
        assert "type" in spec["required"]
        assert spec["additionalProperties"] is False
    assert all(ref.rsplit("/", 1)[-1] in defs for ref in _refs(schema))
    assert "StrategySpec" not in defs
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_schema_accepts_every_example(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = config_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(
        yaml.safe_load(path.read_text())
    ))
    assert [e.message for e in errors] == []


# --- a third-party strategy -----------------------------------------------------------


class WeightedEchoSpec(StrategySpec):
    """A plug-in's section: one backend and a weight."""

    type: Literal["weighted_echo"] = "weighted_echo"
    target: str
    weight: float = 1.0


class WeightedEchoStrategy:
    """Just enough of a strategy for the loader: a name, a spec type, backend refs."""

    name: ClassVar[str] = "weighted_echo"
    spec_type: ClassVar[type[StrategySpec]] = WeightedEchoSpec
    variants: ClassVar[tuple[str, ...]] = ("default",)

    def backend_refs(self, spec: WeightedEchoSpec) -> Mapping[str, str]:
        return {"target": spec.target}


@pytest.fixture
def plugin() -> Iterator[None]:
    strategies.registered()  # discover built-ins first, so the restore keeps them
    saved = dict(strategies._registry)
    strategies.register(WeightedEchoStrategy())  # type: ignore[arg-type]
    try:
        yield
    finally:
        strategies._registry.clear()
        strategies._registry.update(saved)


def test_plugin_strategy_is_validated_by_its_own_spec(plugin: None) -> None:
    config = parse_config(doc("{type: weighted_echo, target: iris-v2, weight: 3}"), env={})
    assert isinstance(config, Config)
    spec = config.routes[0].strategy
    assert isinstance(spec, WeightedEchoSpec) and (spec.target, spec.weight) == ("iris-v2", 3)
    assert issues_of(doc("{type: weighted_echo, target: nope, bogus: 1}")) == [
        "routes[0].strategy.bogus: unknown key",
    ]
    assert issues_of(doc("{type: weighted_echo, target: nope}")) == [
        "routes[0].strategy.target: unknown backend 'nope' (known: iris-v1, iris-v2)",
    ]
    assert issues_of(doc("{type: foo}")) == [
        "routes[0].strategy.type: unknown strategy 'foo' "
        "(known: blue_green, canary, direct, shadow, weighted_echo)",
    ]


def test_plugin_strategy_appears_in_the_schema(plugin: None) -> None:
    schema = config_json_schema()
    route = schema["$defs"]["RouteSpec"]
    mapping = route["properties"]["strategy"]["discriminator"]["mapping"]
    assert set(mapping) == {*BUILTIN_TYPES, "weighted_echo"}
    echo = schema["$defs"][mapping["weighted_echo"].rsplit("/", 1)[-1]]
    assert echo["properties"]["type"]["const"] == "weighted_echo"
    assert {"$ref": mapping["weighted_echo"]} in route["properties"]["strategy"]["oneOf"]
