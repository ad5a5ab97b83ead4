"""Config watching: in-place writes, editor renames and ConfigMap symlink swaps are each seen
within 1 s (SPEC §7), on inotify and on polling; SIGHUP; reading a file while it is written."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest

from router.control.watcher import (
    ConfigWatcher,
    UnstableFileError,
    install_sighup,
    read_stable,
    remove_sighup,
)

BACKENDS = pytest.mark.parametrize("polling", [False, True], ids=["notify", "polling"])


class Recorder:
    """An ``on_change`` that counts its calls and can be told to fail or to block."""

    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.max_running = 0
        self.fail_next = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> None:
        self.calls += 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("reload blew up")
        finally:
            self.running -= 1


async def eventually(predicate: Callable[[], bool], timeout: float) -> None:
    """Poll ``predicate`` without blocking the loop; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def watching(path: Path, polling: bool) -> AsyncIterator[tuple[ConfigWatcher, Recorder]]:
    """A running watcher on ``path``, already armed: a probe file in the directory was seen."""
    recorder = Recorder()
    watcher = ConfigWatcher(path, recorder, debounce_ms=150, force_polling=polling)
    task = asyncio.create_task(watcher.run())
    probe = path.parent / "..probe"  # a name the watcher treats as relevant (like ..data)
    deadline = time.monotonic() + 10
    while recorder.calls == 0:
        assert time.monotonic() < deadline, "the watcher never started"
        probe.write_text(str(time.monotonic()))
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.4)  # let the probe's burst drain
    recorder.calls = 0
    try:
        yield watcher, recorder
    finally:
        watcher.stop()
        await asyncio.wait_for(task, timeout=2)


async def change_seen(recorder: Recorder, change: Callable[[], object]) -> None:
    """Apply ``change`` and require an ``on_change`` call within SPEC §7's 1 second."""
    before = recorder.calls
    change()
    await eventually(lambda: recorder.calls > before, timeout=1.0)
    await asyncio.sleep(0.3)  # the rest of the burst, so the next change is counted on its own


@BACKENDS
async def test_in_place_write(tmp_path: Path, polling: bool) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\n")
    async with watching(config, polling) as (_, recorder):
        for version in (2, 3):
            await change_seen(recorder, partial(config.write_text, f"version: {version}\n"))


@BACKENDS
async def test_editor_writes_a_temp_file_and_renames_it(tmp_path: Path, polling: bool) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\n")

    def save_like_an_editor(version: int) -> None:
        tmp = tmp_path / "config.yaml~"  # a name watchfiles' default filter would drop
        tmp.write_text(f"version: {version}\n")
        os.replace(tmp, config)

    async with watching(config, polling) as (_, recorder):
        for version in (2, 3):
            await change_seen(recorder, partial(save_like_an_editor, version))


@BACKENDS
async def test_configmap_symlink_swap(tmp_path: Path, polling: bool) -> None:
    mount = tmp_path / "config"
    mount.mkdir()
    first = mount / "..2026_11_29_12_00_00.000000001"
    first.mkdir()
    (first / "config.yaml").write_text("version: 1\n")
    os.symlink(first.name, mount / "..data")
    os.symlink("..data/config.yaml", mount / "config.yaml")
    config = mount / "config.yaml"

    def swap_like_kubelet(version: int) -> None:
        old = (mount / "..data").resolve()
        new = mount / f"..2026_11_29_12_0{version}_00.000000001"
        new.mkdir()
        (new / "config.yaml").write_text(f"version: {version}\n")
        os.symlink(new.name, mount / "..data_tmp")
        os.rename(mount / "..data_tmp", mount / "..data")
        shutil.rmtree(old)

    async with watching(config, polling) as (_, recorder):
        for version in (2, 3):
            await change_seen(recorder, partial(swap_like_kubelet, version))
            assert config.read_text() == f"version: {version}\n"


async def test_symlink_to_a_file_elsewhere_watches_its_directory_too(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "real.yaml").write_text("version: 1\n")
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "config.yaml"
    os.symlink(elsewhere / "real.yaml", config)
    async with watching(config, polling=False) as (_, recorder):
        await change_seen(recorder, lambda: (elsewhere / "real.yaml").write_text("version: 2\n"))


async def test_directory_removed_and_recreated(tmp_path: Path) -> None:
    directory = tmp_path / "conf"
    directory.mkdir()
    config = directory / "config.yaml"
    config.write_text("version: 1\n")
    async with watching(config, polling=False) as (_, recorder):
        shutil.rmtree(directory)
        await asyncio.sleep(0.3)
        calls = recorder.calls
        directory.mkdir()
        config.write_text("version: 2\n")
        await eventually(lambda: recorder.calls > calls, timeout=3)
        await asyncio.sleep(0.5)  # the new directory is being watched again
        await change_seen(recorder, lambda: config.write_text("version: 3\n"))


async def test_a_failing_callback_does_not_stop_the_watcher(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\n")
    async with watching(config, polling=False) as (_, recorder):
        recorder.fail_next = True
        await change_seen(recorder, lambda: config.write_text("version: 2\n"))
        assert not recorder.fail_next
        await change_seen(recorder, lambda: config.write_text("version: 3\n"))


async def test_changes_during_a_callback_lead_to_one_more_call(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\n")
    async with watching(config, polling=False) as (_, recorder):
        recorder.gate = asyncio.Event()
        config.write_text("version: 2\n")
        await eventually(lambda: recorder.running == 1, timeout=1.0)
        for version in (3, 4, 5):
            config.write_text(f"version: {version}\n")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.4)  # the watcher has seen them; the callback is still blocked
        assert recorder.calls == 1
        recorder.gate.set()
        await eventually(lambda: recorder.calls == 2, timeout=1.0)
        assert recorder.max_running == 1


async def test_stop_ends_run_promptly(tmp_path: Path) -> None:
    watcher = ConfigWatcher(tmp_path / "config.yaml", Recorder())
    task = asyncio.create_task(watcher.run())
    await asyncio.sleep(0.2)
    watcher.stop()
    await asyncio.wait_for(task, timeout=1.0)


async def test_sighup_calls_the_callback() -> None:
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGHUP)
    received = asyncio.Event()
    install_sighup(loop, received.set)
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(received.wait(), timeout=2)
    finally:
        remove_sighup(loop)
        signal.signal(signal.SIGHUP, previous)


# --- read_stable ------------------------------------------------------------------------------


def _slow_writer(path: Path, chunks: list[bytes], started: threading.Event, gap: float) -> None:
    """Truncate, then write chunk by chunk with pauses, like an editor saving in place."""
    with path.open("wb") as file:
        for chunk in chunks:
            file.write(chunk)
            file.flush()
            started.set()
            time.sleep(gap)


def test_read_stable_waits_for_a_slow_writer(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("old: content\n")
    chunks = [f"key{i}: {i}\n".encode() for i in range(40)]
    started = threading.Event()
    writer = threading.Thread(target=_slow_writer, args=(config, chunks, started, 0.005))
    writer.start()
    try:
        assert started.wait(5)
        assert read_stable(config, settle_s=0.1) == b"".join(chunks)
    finally:
        writer.join()


def test_read_stable_returns_a_quiet_file_at_once(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\n")
    assert read_stable(config) == b"version: 1\n"


def test_read_stable_retries_a_file_that_is_briefly_missing(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    timer = threading.Timer(0.1, config.write_text, args=("version: 2\n",))
    timer.start()
    try:
        assert read_stable(config) == b"version: 2\n"
    finally:
        timer.join()


def test_read_stable_gives_up_on_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_stable(tmp_path / "absent.yaml", max_wait_s=0.1)


def test_read_stable_gives_up_on_a_file_that_never_settles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deterministic "always changing": every read sees new bytes (a real writer thread
    # can be starved long enough for two reads to agree).
    config = tmp_path / "config.yaml"
    config.write_text("n: 0\n")
    reads = iter(range(1_000_000))
    monkeypatch.setattr(Path, "read_bytes", lambda self: f"n: {next(reads)}\n".encode())
    with pytest.raises(UnstableFileError, match="still changing"):
        read_stable(config, settle_s=0.01, max_wait_s=0.1)


@BACKENDS
async def test_unrelated_files_in_the_directory_are_ignored(tmp_path: Path, polling: bool) -> None:
    """Logs or state written next to the config must not cause re-reads."""
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\n")
    async with watching(config, polling) as (_, recorder):
        for i in range(5):
            (tmp_path / "router.log").write_text(f"line {i}\n")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)
        assert recorder.calls == 0
        await change_seen(recorder, partial(config.write_text, "version: 2\n"))
