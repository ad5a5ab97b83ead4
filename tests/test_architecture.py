"""The structure's rules, checked over the source: which part may import which, and function size.

The import graph is read with ``ast`` (no module is imported, so nothing runs);
an import inside ``if TYPE_CHECKING:`` or a function counts like any other. The
rules are the ones README's "Architecture" section states; a wrong arrow fails
here with the module, line and import that broke it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("router", "strategies")

_REQUEST_PATH = frozenset({"router.proxy", "router.routing", "router.upstream", "router.server"})
_SHELLS = frozenset({"router.admin", "router.cli", "router.demo", "router.serve", "router.app"})

# What each part may import besides itself and the standard library. A part missing
# here fails test_every_part_has_a_rule: a new package decides its arrows first.
ALLOWED: dict[str, frozenset[str]] = {
    # The pure core: nothing from router/, nothing that does I/O.
    "strategies": frozenset(),
    # The listener and the keep-alive pool are the bottom: they know nothing above them.
    "router.server": frozenset(),
    "router.upstream": frozenset(),
    "router.config": frozenset({"strategies"}),
    "router.telemetry": frozenset({"strategies"}),
    # The snapshot holds the config it was compiled from and each backend's pool.
    "router.routing": frozenset({"router.config", "router.upstream", "strategies"}),
    "router.shadow": frozenset(
        {"router.config", "router.routing", "router.upstream", "router.telemetry", "strategies"}
    ),
    # The request path takes from the listener only the ASGI keys it offers.
    "router.proxy": frozenset(
        {
            "router.config", "router.routing", "router.upstream", "router.server.keys",
            "router.shadow", "router.telemetry", "strategies",
        }
    ),
    "router.control": frozenset(
        {"router.config", "router.routing", "router.telemetry", "strategies"}
    ),
    "router.notify": frozenset({"router.config", "router.telemetry"}),
    "router.admin": frozenset(
        {"router.config", "router.control", "router.routing", "router.telemetry", "strategies"}
    ),
    "router.demo": frozenset({"router.config", "router.telemetry", "strategies"}),
    # The composition root builds every part but the shells that run it.
    "router.app": frozenset(
        {
            "router.config", "router.control", "router.notify", "router.proxy",
            "router.routing", "router.shadow", "router.telemetry", "strategies",
        }
    ),
    # The process: the root, its two listeners and the admin app they serve.
    "router.serve": frozenset(
        {
            "router.admin", "router.app", "router.config", "router.control", "router.server",
            "router.telemetry",
        }
    ),
    "router.cli": frozenset({"router.config", "router.demo", "router.serve", "strategies"}),
    "router.__main__": frozenset({"router.cli"}),
    "router": frozenset(),
}

# Libraries that do I/O or run an event loop: the pure core never imports them.
_IO_LIBRARIES = frozenset(
    {"asyncio", "httpx", "redis", "socket", "starlette", "structlog", "uvicorn"}
)

# Functions longer than 60 lines that are declarations, not logic (reviewed one by one).
LONG_ALLOWED: set[tuple[str, str]] = set()  # (file, function) reviewed as declarative
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400  # DESIGN: aim for 50-300 lines a module, split past about 400


def _modules() -> Iterator[tuple[str, Path]]:
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module or ``module.name``) for every import in ``path``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def part_of(module: str) -> str:
    """The part a module belongs to: ``strategies``, ``router.<package>`` or a top module."""
    if module == "strategies" or module.startswith("strategies."):
        return "strategies"
    pieces = module.split(".")
    if pieces[0] != "router" or len(pieces) == 1:
        return pieces[0]
    return f"router.{pieces[1]}"


def _within(imported: str, allowed: str) -> bool:
    return imported == allowed or imported.startswith(allowed + ".")


def _broken_arrows() -> list[str]:
    broken = []
    for module, path in _modules():
        source = part_of(module)
        allowed = ALLOWED.get(source, frozenset())
        for line, imported in _imports(module, path):
            target = part_of(imported)
            if target not in ("router", "strategies") and not target.startswith("router."):
                if source == "strategies" and target in _IO_LIBRARIES:
                    broken.append(f"{path.relative_to(ROOT)}:{line} imports {imported} (I/O)")
                continue
            if target == source or any(_within(imported, a) for a in allowed):
                continue
            broken.append(f"{path.relative_to(ROOT)}:{line} ({source}) imports {imported}")
    return broken


def test_every_part_has_a_rule() -> None:
    """Each package and top module under router/ appears in the table of allowed arrows."""
    parts = {part_of(module) for module, _ in _modules()}
    assert parts - ALLOWED.keys() == set()


def test_imports_point_only_the_allowed_way() -> None:
    """No module imports a part its own part may not depend on."""
    assert _broken_arrows() == []


def test_request_path_never_imports_the_shells() -> None:
    """Proxy, routing, pool and listener stand without admin, CLI, demo or the root."""
    for source in _REQUEST_PATH | {"router.config", "strategies"}:
        assert ALLOWED[source].isdisjoint(_SHELLS), source


@pytest.mark.parametrize(
    ("source", "imported", "broken"),
    [
        ("strategies.canary.strategy", "router.config.model", True),
        ("router.upstream.pool", "strategies", True),
        ("router.server.protocol", "router.proxy.errors", True),
        ("router.proxy.exchange", "router.server.protocol", True),
        ("router.proxy.exchange", "router.server.keys.BODY_FOLLOWS", False),
        ("router.config.loader", "router.routing.matching", True),
        ("router.routing.snapshot", "router.admin.api", True),
        ("router.control.rollouts", "router.routing.snapshot.Snapshot", False),
    ],
)
def test_the_rule_tells_a_wrong_arrow(source: str, imported: str, broken: bool) -> None:
    """The check itself: the arrows the rules name as wrong are found wrong, and only those."""
    allowed = ALLOWED[part_of(source)]
    ok = part_of(imported) == part_of(source) or any(_within(imported, a) for a in allowed)
    assert ok is not broken


def test_relative_imports_resolve(tmp_path: Path) -> None:
    """``from ..x import y`` in router/a/b.py is read as router.x.y."""
    source = tmp_path / "b.py"
    source.write_text("from ..x import y\nfrom . import z\n")
    assert [name for _, name in _imports("router.a.b", source)] == ["router.x.y", "router.a.z"]


def _function_lengths() -> dict[tuple[str, str, int], int]:
    """Lines of every function in router/ and strategies/, by (file, name, first line)."""
    lengths = {}
    for _, path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                end = node.end_lineno or node.lineno
                lengths[(rel, node.name, node.lineno)] = end - node.lineno + 1
    return lengths


def test_no_function_is_longer_than_sixty_lines() -> None:
    """Logic comes in small named steps; only the reviewed declarations are longer."""
    too_long = [
        f"{rel}:{line} {name} ({length} lines)"
        for (rel, name, line), length in _function_lengths().items()
        if length > MAX_FUNCTION_LINES and (rel, name) not in LONG_ALLOWED
    ]
    assert too_long == []


def test_the_allowlist_names_only_long_functions() -> None:
    """An entry whose function shrank or went away leaves the allowlist."""
    long = {
        (rel, name)
        for (rel, name, _), length in _function_lengths().items()
        if length > MAX_FUNCTION_LINES
    }
    assert LONG_ALLOWED - long == set()


def test_no_module_is_longer_than_four_hundred_lines() -> None:
    """A module past 400 lines does more than one job: split it (as the answer relay left
    the exchange, router/proxy/relay.py)."""
    too_long = [
        f"{path.relative_to(ROOT).as_posix()} ({n} lines)"
        for _, path in _modules()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert too_long == []
