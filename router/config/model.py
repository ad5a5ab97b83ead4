"""The config file's model (docs/configuration.md), in pydantic v2.

``load_config(path)`` (in ``router.config.loader``) turns a YAML file into a ``Config``
or a ``ConfigError`` listing every problem with its place in the file. The
models here are the shape; the strategy sections are validated by each
strategy's own ``spec_type`` (a plug-in brings its own).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from strategies.base import StrategySpec
from strategies.drift import DriftSpec
from strategies.feedback import FeedbackSpec
from strategies.units import ByteSize, Duration

__all__ = [
    "AdminSpec",
    "BackendSpec",
    "Config",
    "HealthSpec",
    "MatchSpec",
    "NotificationSpec",
    "PrometheusSpec",
    "ProxySpec",
    "RouteSpec",
    "StateSpec",
    "TimeoutSpec",
    "admin_exposure",
    "is_loopback_host",
    "parse_listen",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:80`` for IPv6) into host and port; ValueError if malformed."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT (got {value!r})")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535 (got {port})")
    return host.strip("[]"), port


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_host(host: str) -> bool:
    """Whether a listen host or a ``Host`` header value (port stripped) names loopback."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def admin_exposure(config: Config, admin_listen: str) -> str | None:
    """Why ``config`` must not serve an admin listener on ``admin_listen``, or None.

    Off loopback without a token, anyone who reaches the port could roll back or promote:
    refused at start and by every reload (docs/http.md, docs/faults.md).
    """
    host, _ = parse_listen(admin_listen)
    if not is_loopback_host(host) and config.admin.token is None:
        return (
            f"admin listener {admin_listen} is off loopback and no admin.token is set "
            "(set ROUTER_ADMIN_TOKEN or admin.token)"
        )
    return None


def _check_listen(value: str) -> str:
    parse_listen(value)
    return value


def _none_if_empty(value: Any) -> Any:
    # An unset ``${VAR}`` substitutes to "": no secret rather than an empty one.
    return None if value in ("", None) else value


def _check_web_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL (got {value!r})")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdminSpec(_Strict):
    """``admin``: where the admin API, metrics and dashboard listen, and their token."""

    listen: str = "127.0.0.1:9901"
    token: SecretStr | None = None

    _listen = field_validator("listen")(_check_listen)
    _token = field_validator("token", mode="before")(_none_if_empty)


class StateSpec(_Strict):
    """``state``: where runtime rollout state is kept (``redis``: shared by replicas)."""

    store: Literal["file", "memory", "redis"] = "file"
    path: str = ".traffic-router/state.json"
    url: str | None = None
    key_prefix: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")] = (
        "traffic-router"
    )
    lease: Annotated[Duration, Field(gt=0)] = 5.0
    # The last state read from redis, to start from while redis is down.
    cache: str = ".traffic-router/state-cache.json"

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("must be a redis:// or rediss:// URL")
        if not parts.hostname:
            raise ValueError("has no host")
        try:
            parts.port  # noqa: B018 (raises for a port out of range)
        except ValueError as exc:
            raise ValueError(f"has a bad port: {exc}") from None
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ValueError(f"database must be a number (got {db!r})")
        return value



class ProxySpec(_Strict):
    """``proxy``: limits and header behaviour of the proxy listener."""

    max_request_body: ByteSize = 10 * 1024 * 1024
    expose_headers: bool = True
    preserve_host: bool = False
    header_timeout: Annotated[Duration, Field(gt=0)] = 10.0
    max_header_bytes: Annotated[ByteSize, Field(ge=1024)] = 64 * 1024
    # Slow clients (docs/faults.md): the longest pause while sending a body (408), and the longest a
    # response may stay unread (connection closed). Neither holds a backend connection longer.
    body_timeout: Annotated[Duration, Field(gt=0)] = 30.0
    send_timeout: Annotated[Duration, Field(gt=0)] = 30.0
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Model input/output health reads bodies up to this size (0 turns it off).
    inspect_max_body: ByteSize = 64 * 1024

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(ipaddress.ip_network(str(v), strict=False) for v in value)
        return value


class TimeoutSpec(_Strict):
    """A backend's connect and read deadlines."""

    connect: Annotated[Duration, Field(gt=0)] = 1.0
    read: Annotated[Duration, Field(gt=0)] = 30.0


class HealthSpec(_Strict):
    """An optional active health check of a backend."""

    path: str = "/health"
    interval: Annotated[Duration, Field(gt=0)] = 5.0
    timeout: Annotated[Duration, Field(gt=0)] = 2.0
    unhealthy_after: Annotated[int, Field(ge=1)] = 3
    healthy_after: Annotated[int, Field(ge=1)] = 1


class BackendSpec(_Strict):
    """One model server the router may forward to."""

    url: str
    timeout: TimeoutSpec = TimeoutSpec()
    max_connections: Annotated[int, Field(ge=1)] = 100
    health: HealthSpec | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # Everything the pool would refuse at install is refused here, so that ``validate``
        # catches it and a reload never fails half-way (docs/faults.md).
        parts = urlsplit(value)
        if parts.scheme != "http":
            raise ValueError(f"must be an http:// URL (got {value!r})")
        if not value.isascii() or not value.isprintable() or " " in value:
            raise ValueError(f"must be printable ASCII without spaces (got {value!r})")
        if parts.username is not None or parts.password is not None:
            raise ValueError("cannot carry user info (user:password@); the router sends none")
        if not parts.hostname:
            raise ValueError(f"has no host (got {value!r})")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"port must be a number between 1 and 65535 (got {value!r})") from None
        if port == 0:
            raise ValueError(f"port must be a number between 1 and 65535 (got {value!r})")
        try:
            parts.netloc.encode("idna")
        except UnicodeError:
            raise ValueError(f"has an invalid host name (got {value!r})") from None
        if parts.query or parts.fragment:
            raise ValueError(f"cannot carry a query or fragment (got {value!r})")
        return value.rstrip("/")


class MatchSpec(_Strict):
    """Which requests a route takes: all given conditions must hold."""

    path_prefix: str = "/"
    headers: dict[str, str] = Field(default_factory=dict)
    methods: tuple[str, ...] = ()
    # Top-level fields of a JSON request body, compared as strings; the body is read
    # before routing (up to ``proxy.inspect_max_body``) only for routes that have these.
    body: dict[str, str] = Field(default_factory=dict)

    @field_validator("path_prefix")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must start with / (got {value!r})")
        return value

    @field_validator("methods")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(m.upper() for m in value)

    @field_validator("headers")
    @classmethod
    def _lower(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.lower(): v for k, v in value.items()}


# Decision events a webhook may subscribe to (docs/observability.md, decision events).
NOTIFY_EVENTS = (
    "rollback", "promote", "pause", "resume", "rollout_step", "switch", "switch_refused",
    "config_reload", "config_reload_failed", "backend_health", "shadow_passed", "input_drift",
)
_DEFAULT_NOTIFY_EVENTS = (
    "rollback", "promote", "rollout_step", "switch", "switch_refused", "config_reload_failed",
    "shadow_passed", "input_drift",
)


class NotificationSpec(_Strict):
    """One webhook: where decision events are POSTed, in which format, signed with what."""

    url: str
    format: Literal["json", "slack"] = "json"
    events: tuple[str, ...] = _DEFAULT_NOTIFY_EVENTS
    secret: SecretStr | None = None
    timeout: Annotated[Duration, Field(gt=0)] = 5.0

    _url = field_validator("url")(_check_web_url)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [event for event in value if event not in NOTIFY_EVENTS]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r} (known: {', '.join(NOTIFY_EVENTS)})")
        if not value:
            raise ValueError("must list at least one event")
        return value

    _secret = field_validator("secret", mode="before")(_none_if_empty)


class PrometheusSpec(_Strict):
    """Where the analysis's Prometheus checks (``analysis.metrics``) are queried."""

    url: str
    timeout: Annotated[Duration, Field(gt=0)] = 5.0

    _url = field_validator("url")(_check_web_url)


class RouteSpec(_Strict):
    """One route: a name, a match and a strategy section (validated by its strategy)."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    match: MatchSpec = MatchSpec()
    strategy: StrategySpec
    feedback: FeedbackSpec | None = None  # remember predictions to join late labels to
    drift: DriftSpec | None = None  # compare model inputs with a reference

    @model_validator(mode="after")
    def _labels_for_the_accuracy_gate(self) -> RouteSpec:
        analysis = getattr(self.strategy, "analysis", None)
        if getattr(analysis, "min_accuracy_ratio", None) is not None and self.feedback is None:
            raise ValueError(
                "strategy.analysis.min_accuracy_ratio needs a feedback section on the route "
                "(the labels it judges by)"
            )
        return self


class Config(_Strict):
    """The whole file."""

    listen: str = "0.0.0.0:8080"
    admin: AdminSpec = AdminSpec()
    state: StateSpec = StateSpec()
    proxy: ProxySpec = ProxySpec()
    backends: Annotated[dict[str, BackendSpec], Field(min_length=1)]
    routes: Annotated[tuple[RouteSpec, ...], Field(min_length=1)]
    notifications: tuple[NotificationSpec, ...] = ()
    prometheus: PrometheusSpec | None = None  # for analysis.metrics checks

    _listen = field_validator("listen")(_check_listen)
