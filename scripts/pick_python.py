"""Print the Python interpreter that ``make`` builds ``.venv`` with.

The router is CPU-bound Python, so the interpreter's build matters: pyenv and
asdf compile CPython without ``--enable-optimizations`` (no PGO, no LTO)
unless told to, and on the project's machines pyenv's 3.11.7 ran a pure-Python
workload about 1.5x slower than Debian's PGO/LTO-built ``/usr/bin/python3``
(3.11.2), which was worth 12-23 % of the router's throughput in ``make bench``.
Distribution interpreters (Debian, Ubuntu, Fedora) and the official Docker
images' ``/usr/local/bin/python3`` are optimized builds.

So the first of ``/usr/bin/python3``, ``/usr/local/bin/python3`` and the
``python3`` on PATH that is 3.11 or newer and can make a venv is printed. The
order is fixed, not timed, so that every ``make`` on a machine picks the same
interpreter. ``make PYTHON=...`` skips all this. Standard library only: this
runs before any venv exists.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

CANDIDATES = ("/usr/bin/python3", "/usr/local/bin/python3", "python3")

# Exits 0 only on 3.11+ with a working ensurepip (Debian splits it into python3-venv).
PROBE = (
    "import sys, ensurepip, venv\n"
    "sys.exit(1) if sys.version_info < (3, 11) else ensurepip.version()\n"
)


def usable(command: str) -> bool:
    """Whether ``command`` is a Python 3.11+ that can create a venv with pip."""
    path = shutil.which(command)
    if path is None:
        return False
    try:
        # The interpreters this machine has, on fixed paths: nothing here comes from input.
        probe = [path, "-I", "-c", PROBE]
        subprocess.run(probe, capture_output=True, timeout=30, check=True)  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def main() -> int:
    """Print the chosen interpreter (``python3`` when none of the candidates is usable)."""
    print(next((command for command in CANDIDATES if usable(command)), "python3"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
