"""Load and validate the config file (README's CLI, docs/configuration.md).

``load_config(path)`` reads YAML, substitutes ``${VAR}`` from the environment,
validates the top level with ``router.config.model.Config`` and each route's
``strategy`` section with its own strategy's ``spec_type`` (built-ins and
plug-ins alike), then checks cross-references (backend names, duplicate route
names). Every problem is collected before anything is raised, so one run shows
them all::

    ConfigError(Exception)       every problem in the file
      .issues: ConfigIssue(place, message), e.g. "routes[1].strategy.candidate: unknown backend"

Relative ``state.path``, ``state.cache`` and shadow ``mismatch_log`` are made absolute against the
config file's directory. A file over ``MAX_CONFIG_BYTES`` is refused unread.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

import strategies
from router.config.collector import collector_paused
from router.config.issues import (
    ConfigIssue,
    YamlSyntaxError,
    issues_from_validation,
    read_yaml,
    substitute_env,
)
from router.config.model import Config, RouteSpec
from strategies.base import StrategySpec
from strategies.units import parse_size

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_BYTES_ENV",
    "ConfigError",
    "ConfigIssue",
    "LoadedConfig",
    "config_version",
    "load_config",
    "max_config_bytes",
    "parse_config",
    "read_config",
    "run_validate",
]

# Stands in for a strategy section that failed, so the rest of the route still validates.
_INVALID_SPEC = StrategySpec(type="invalid")
_ROUTE_PLACE = re.compile(r"^routes\[(\d+)\]")
MAX_CONFIG_BYTES = 1024 * 1024
#: Raises the size limit for platforms with thousands of routes (``4MiB``, or bytes).
MAX_CONFIG_BYTES_ENV = "ROUTER_MAX_CONFIG_BYTES"


def max_config_bytes(env: Mapping[str, str] | None = None) -> int:
    """The size limit in force: ``MAX_CONFIG_BYTES``, or ``ROUTER_MAX_CONFIG_BYTES`` when set.

    The limit guards the event loop against a file no one meant to write; a file of
    10,000 routes in block style is about 1.4 MB, so a platform that large raises it.
    A value that is not a size leaves the default in force.
    """
    value = (os.environ if env is None else env).get(MAX_CONFIG_BYTES_ENV)
    if not value:
        return MAX_CONFIG_BYTES
    try:
        return max(1, parse_size(value))
    except ValueError:
        return MAX_CONFIG_BYTES


class ConfigError(Exception):
    """The config file is unusable; ``issues`` lists every problem with its place."""

    def __init__(self, issues: Sequence[ConfigIssue], path: str = "<string>") -> None:
        self.issues: tuple[ConfigIssue, ...] = tuple(issues)
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config with where it came from and a short content version."""

    config: Config
    path: Path
    version: str
    raw: bytes


def _spec_types() -> dict[str, type[StrategySpec]]:
    """Every strategy ``type`` usable in a file (built-ins and plug-ins), with its spec model."""
    return {name: strategy.spec_type for name, strategy in strategies.registered().items()}


def _declared_refs(kind: str, fields: Mapping[str, Any]) -> dict[str, str]:
    """Backend names in the fields a strategy declares as naming backends (``backend_fields``).

    Read from a raw section too, so a section that failed its own validation still
    has its unknown backends reported.
    """
    strategy = strategies.registered().get(kind)
    refs: dict[str, str] = {}
    for field in getattr(strategy, "backend_fields", ()):
        value = fields.get(field)
        if isinstance(value, str):
            refs[field] = value
        elif isinstance(value, list | tuple):
            refs.update({f"{field}[{i}]": v for i, v in enumerate(value) if isinstance(v, str)})
    return refs


def _backend_refs(spec: StrategySpec) -> Mapping[str, str]:
    """Map each backend-naming field of ``spec`` to the backend it names."""
    try:
        strategy = strategies.get_strategy(spec.type)
    except strategies.UnknownStrategyError:
        strategy = None
    if strategy is not None and isinstance(spec, strategy.spec_type):
        return strategy.backend_refs(spec)
    fields = {name: getattr(spec, name) for name in type(spec).model_fields}
    return _declared_refs(spec.type, fields)


def _validate_strategy(
    raw: Any, place: str, specs: Mapping[str, type[StrategySpec]]
) -> tuple[StrategySpec | None, list[ConfigIssue]]:
    """Validate one route's ``strategy`` section with the model its ``type`` names."""
    if not isinstance(raw, dict):
        got = "a list" if isinstance(raw, list) else repr(raw)
        return None, [ConfigIssue(place, f"must be a mapping (got {got})")]
    kind = raw.get("type")
    if kind is None:
        return None, [ConfigIssue(f"{place}.type", "required")]
    if not isinstance(kind, str):
        return None, [ConfigIssue(f"{place}.type", f"must be a string (got {kind!r})")]
    spec_type = specs.get(kind)
    if spec_type is None:
        known = ", ".join(sorted(specs))
        return None, [ConfigIssue(f"{place}.type", f"unknown strategy {kind!r} (known: {known})")]
    try:
        return spec_type.model_validate(raw), []
    except ValidationError as exc:
        return None, issues_from_validation(exc, spec_type, prefix=place)
    except Exception as exc:  # a plug-in's validator must not take the reload loop down
        return None, [ConfigIssue(place, f"strategy {kind!r} could not validate: {exc}")]


def _route_refs(route: Any, spec: StrategySpec | None) -> Mapping[str, str]:
    """A route's backend references; read from the raw section if its spec failed."""
    if spec is not None:
        return _backend_refs(spec)
    raw = route.get("strategy") if isinstance(route, dict) else None
    if isinstance(raw, dict) and isinstance(raw.get("type"), str):
        return _declared_refs(raw["type"], raw)
    return {}


def _cross_check(tree: Mapping[str, Any], specs: Mapping[int, StrategySpec]) -> list[ConfigIssue]:
    """Backend names that exist, route names that are unique, settings that need others."""
    issues: list[ConfigIssue] = []
    backends = tree.get("backends")
    routes = tree.get("routes")
    if isinstance(backends, dict) and backends and isinstance(routes, list):
        names = sorted(str(name) for name in backends)
        for index, route in enumerate(routes):
            try:
                refs = _route_refs(route, specs.get(index))
            except Exception as exc:  # a plug-in bug is reported, not raised
                place = f"routes[{index}].strategy"
                issues.append(ConfigIssue(place, f"could not list its backends: {exc}"))
                continue
            for field, name in refs.items():
                if name not in backends:
                    issues.append(ConfigIssue(
                        f"routes[{index}].strategy.{field}",
                        f"unknown backend {name!r} (known: {', '.join(names)})",
                    ))
    first_seen: dict[str, int] = {}
    for index, route in enumerate(routes if isinstance(routes, list) else ()):
        route_name = route.get("name") if isinstance(route, dict) else None
        if not isinstance(route_name, str):
            continue
        if route_name in first_seen:
            issues.append(ConfigIssue(
                f"routes[{index}].name",
                f"duplicate route name {route_name!r} (first at routes[{first_seen[route_name]}])",
            ))
        else:
            first_seen[route_name] = index
    state = tree.get("state")
    if isinstance(state, dict) and state.get("store") == "redis" and not state.get("url"):
        issues.append(ConfigIssue("state.url", "required when store is redis"))
    if not tree.get("prometheus"):
        for index, spec in specs.items():
            analysis = getattr(spec, "analysis", None)
            if getattr(analysis, "metrics", None):
                issues.append(ConfigIssue(
                    f"routes[{index}].strategy.analysis.metrics",
                    "needs the top-level prometheus key (url, timeout)",
                ))
    return issues


def _route_models(routes: list[Any]) -> tuple[RouteSpec, ...] | None:
    """Each route validated on its own, or None if one fails (the file's validation then
    words its errors).

    Validated inside the file's model, 10,000 routes were one call of 0.1 s that held the
    interpreter lock, and the event loop with it; between two routes the loop gets a turn.
    """
    try:
        return tuple(RouteSpec.model_validate(route) for route in routes)
    except ValidationError:
        return None


def _validate(tree: dict[str, Any], issues: list[ConfigIssue]) -> Config | None:
    """Validate the whole tree, appending every problem to ``issues``."""
    known = _spec_types()
    specs: dict[int, StrategySpec] = {}
    routes = tree.get("routes")
    checked: list[Any] = []
    if isinstance(routes, list):
        for index, route in enumerate(routes):
            if isinstance(route, dict) and "strategy" in route:
                spec, found = _validate_strategy(
                    route["strategy"], f"routes[{index}].strategy", known
                )
                issues += found
                if spec is not None:
                    specs[index] = spec
                route = {**route, "strategy": spec or _INVALID_SPEC}
            checked.append(route)
    config: Config | None = None
    try:
        if checked:
            config = Config.model_validate({**tree, "routes": _route_models(checked) or checked})
        else:
            config = Config.model_validate(tree)
    except ValidationError as exc:
        issues += issues_from_validation(exc, Config)
    issues += _cross_check(tree, specs)
    return config


def _order(issue: ConfigIssue) -> tuple[int, int]:
    match = _ROUTE_PLACE.match(issue.place)
    return (1, int(match.group(1))) if match else (0, 0)


def _absolute(path: str, base_dir: Path) -> str:
    return os.path.normpath(base_dir / os.path.expanduser(path))


def _with_absolute_paths(config: Config, base_dir: Path) -> Config:
    """Resolve relative file paths against the config file's directory."""
    routes = []
    for route in config.routes:
        spec = route.strategy.with_paths(lambda path: _absolute(path, base_dir))
        if spec is not route.strategy:
            route = route.model_copy(update={"strategy": spec})
        reference = route.drift.reference_file if route.drift is not None else None
        if route.drift is not None and reference is not None:
            drift = route.drift.with_reference_file(_absolute(reference, base_dir))
            route = route.model_copy(update={"drift": drift})
        routes.append(route)
    state = config.state.model_copy(update={
        "path": _absolute(config.state.path, base_dir),
        "cache": _absolute(config.state.cache, base_dir),
    })
    return config.model_copy(update={"state": state, "routes": tuple(routes)})


@collector_paused()
def parse_config(
    text: bytes | str,
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Validate config text; relative paths resolve against ``base_dir`` (default: cwd).

    Raises ``ConfigError`` naming ``source`` with every problem found.
    """
    size = len(text.encode() if isinstance(text, str) else text)
    limit = max_config_bytes(env)
    if size > limit:
        raise ConfigError([_too_large(size, limit)], source)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError([ConfigIssue("", f"not UTF-8 text ({exc.reason})")], source) from None
    try:
        tree = read_yaml(text)
    except YamlSyntaxError as exc:
        raise ConfigError([exc.issue], source) from None
    if not isinstance(tree, dict):
        got = "empty" if tree is None else "a list" if isinstance(tree, list) else repr(tree)
        raise ConfigError([ConfigIssue("", f"the file must be a mapping (got {got})")], source)
    env_issues: list[ConfigIssue] = []
    if "$" in text:  # no reference to substitute otherwise: the tree is kept as it is
        tree, env_issues = substitute_env(tree, os.environ if env is None else env)
    issues: list[ConfigIssue] = []
    config = _validate(tree, issues)
    # A value emptied by a missing variable would only repeat that problem.
    blamed = tuple(issue.place for issue in env_issues)
    issues = env_issues + [i for i in issues if not i.place.startswith(blamed)]
    if issues or config is None:
        raise ConfigError(sorted(issues, key=_order), source)
    config = _with_absolute_paths(config, Path(os.path.abspath(base_dir or Path.cwd())))
    unusable = _model_signal_issues(config)
    if unusable:
        raise ConfigError(unusable, source)
    return config


def _model_signal_issues(config: Config) -> list[ConfigIssue]:
    """Drift and feedback that could never work fail validation, not silently at run time:
    a reference file that cannot be read, or body inspection turned off."""
    issues = []
    inspecting = config.proxy.inspect_max_body > 0
    for index, route in enumerate(config.routes):
        for section in ("drift", "feedback"):
            if getattr(route, section) is not None and not inspecting:
                issues.append(ConfigIssue(
                    f"routes[{index}].{section}",
                    "reads model bodies: needs proxy.inspect_max_body above 0",
                ))
        path = route.drift.reference_file if route.drift is not None else None
        if path is not None and not os.access(path, os.R_OK):
            reason = "no such file" if not os.path.exists(path) else "not readable"
            issues.append(ConfigIssue(f"routes[{index}].drift.reference", f"{reason}: {path}"))
    return issues


def _too_large(size: int, limit: int) -> ConfigIssue:
    return ConfigIssue(
        "", f"the file is {size} bytes, over the limit of {limit} (raise it with "
        f"{MAX_CONFIG_BYTES_ENV})",
    )


def config_version(raw: bytes) -> str:
    """The version of a config file: the first 8 hex digits of its content's SHA-256."""
    return hashlib.sha256(raw).hexdigest()[:8]


def read_config(path: Path, raw: bytes) -> Config:
    """Validate ``raw`` as the content of the config file at ``path``; raises ConfigError."""
    return parse_config(raw, source=str(path), base_dir=path.absolute().parent)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read and validate the file at ``path``; raises ``ConfigError``."""
    file = Path(path)
    try:
        limit = max_config_bytes(env)
        with file.open("rb") as stream:
            raw = stream.read(limit + 1)
            if len(raw) > limit:
                size = os.fstat(stream.fileno()).st_size
                raise ConfigError([_too_large(size, limit)], str(file))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([ConfigIssue("", f"cannot read {file}: {reason}")], str(file)) from None
    config = parse_config(raw, source=str(file), base_dir=file.absolute().parent, env=env)
    return LoadedConfig(config=config, path=file, version=config_version(raw), raw=raw)


def run_validate(path: str) -> tuple[int, str]:
    """``traffic-router validate PATH``: ``(0, "ok")`` or ``(1, one line per error)``."""
    try:
        load_config(path)
    except ConfigError as exc:
        return 1, str(exc)
    return 0, "ok"
