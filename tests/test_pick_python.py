"""scripts/pick_python.py: the interpreter `make` builds .venv with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pick_python.py"

sys.path.insert(0, str(SCRIPT.parent))
import pick_python  # noqa: E402

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)


def test_prints_a_python_that_can_build_the_venv() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True, timeout=60
    )
    chosen = out.stdout.strip()
    assert pick_python.usable(chosen), chosen
    version = subprocess.run(
        [chosen, "-c", "import sys; print(sys.version_info >= (3, 11))"],
        capture_output=True, text=True, check=True,
    )
    assert version.stdout.strip() == "True"


def test_refuses_a_missing_or_old_interpreter(tmp_path: Path) -> None:
    old = tmp_path / "python-old"
    old.write_text("#!/bin/sh\nexit 1\n")
    old.chmod(0o755)
    assert not pick_python.usable(str(old))
    assert not pick_python.usable(str(tmp_path / "no-such-python"))


def test_falls_back_to_python3_when_no_candidate_is_usable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(pick_python, "CANDIDATES", ("/nonexistent/python3",))
    assert pick_python.main() == 0
    assert capsys.readouterr().out.strip() == "python3"
