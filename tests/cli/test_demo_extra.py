"""``traffic-router demo`` without the demo extra says what to install (docs/faults.md).

The child interpreter gets a ``sitecustomize`` that makes numpy and scikit-learn unimportable,
as they are after a plain ``pip install traffic-router``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)

HIDE = '''
import sys


class _Absent:
    """Pretends the demo extra is not installed."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in ("numpy", "sklearn"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Absent)
'''


def test_demo_without_the_extra_exits_1_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(HIDE)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    probe = subprocess.run(
        [sys.executable, "-c", "import numpy"], capture_output=True, text=True, env=env, timeout=60
    )
    assert "ModuleNotFoundError" in probe.stderr  # the stand-in for a missing extra works
    result = subprocess.run(
        [sys.executable, "-m", "router", "demo", "--headless", "--duration", "1"],
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install 'traffic-router[demo]'" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
