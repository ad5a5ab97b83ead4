"""The fault matrix's fixture: each module gets a router of its own (``tests/faults/matrix.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.matrix import running_matrix
from tests.rollout_support import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A started matrix router for the module, stopped after its last test."""
    with running_matrix(tmp_path_factory.mktemp("faults")) as stack:
        yield stack
