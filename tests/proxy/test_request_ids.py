"""Request ids the router makes: 32 random hex digits, drawn from the OS in batches."""

from __future__ import annotations

import os
import re

from router.proxy import entry


def test_ids_are_hex_and_distinct_across_batches() -> None:
    ids = [entry._new_request_id() for _ in range(1000)]  # about four batches
    assert all(re.fullmatch(r"[0-9a-f]{32}", one) for one in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_worker_does_not_repeat_its_parents_ids() -> None:
    entry._new_request_id()  # the parent holds a batch, partly used
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write_end, entry._new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    child = os.read(read_end, 64).decode()
    os.close(read_end)
    assert re.fullmatch(r"[0-9a-f]{32}", child)
    assert child != entry._new_request_id()
