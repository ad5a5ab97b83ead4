"""Config reloads: what one did, as the admin API and the watcher report it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReloadResult"]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did: ``ok``, the version now serving, whether it changed, and errors."""

    ok: bool
    version: str
    changed: bool
    errors: tuple[str, ...] = ()
