"""Config watching: in-place writes, editor renames and ConfigMap symlink swaps are each seen
within 1 s (docs/configuration.md), on inotify and on polling; SIGHUP; reading a file while it
is written."""

from __future__ import annotations

import asyncio
import os
import shutil
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
    read_stable,
)
from tests.backends import eventually

BACKENDS = pytest.mark.parametrize("polling", [False, True], ids=["notify", "polling"])


class Recorder:
    """An ``on_change`` that counts its calls, records the config it read on each (None when
    unreadable), and can be told to fail or to block."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[str | None] = []
        self.calls = 0
        self.running = 0
        self.max_running = 0
        self.fail_next = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> None:
        try:
            self.seen.append(self.path.read_text())
        except OSError:
            self.seen.append(None)
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


async def past_mtime_second(path: Path) -> None:
    """Wait until the clock has left the second of ``path``'s last write.

    The polling backend (notify's PollWatcher, under watchfiles) compares mtimes in whole
    seconds, so a second write of the same size within the same second is invisible to it.
    """
    await eventually(lambda: int(time.time()) > int(path.stat().st_mtime), timeout=2.0)


async def quiet(recorder: Recorder, for_s: float = 0.5, timeout: float = 10.0) -> None:
    """Return once no call has come for ``for_s`` seconds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    calls, since = recorder.calls, time.monotonic()
    while time.monotonic() - since < for_s:
        assert time.monotonic() < deadline, "the watcher never went quiet"
        await asyncio.sleep(0.05)
        if recorder.calls != calls:
            calls, since = recorder.calls, time.monotonic()


async def armed(recorder: Recorder) -> None:
    """Return once the watcher reacts: a probe in the directory (a name it treats as relevant,
    like ``..data``) is rewritten until a call is seen."""
    probe = recorder.path.parent / "..probe"
    calls = recorder.calls
    deadline = time.monotonic() + 10
    while recorder.calls == calls:
        assert time.monotonic() < deadline, "the watcher never reacted"
        probe.write_text(str(time.monotonic()))
        await asyncio.sleep(0.1)


@asynccontextmanager
async def watching(path: Path, polling: bool) -> AsyncIterator[tuple[ConfigWatcher, Recorder]]:
    """A running watcher on ``path``, already armed."""
    recorder = Recorder(path)
    watcher = ConfigWatcher(path, recorder, debounce_ms=150, force_polling=polling)
    task = asyncio.create_task(watcher.run())
    await armed(recorder)
    try:
        yield watcher, recorder
    finally:
        watcher.stop()
        await asyncio.wait_for(task, timeout=2)


async def change_seen(
    recorder: Recorder, change: Callable[[], object], content: str | None, timeout: float = 1.0
) -> None:
    """Apply ``change`` and require a call that reads ``content`` within the 1 second a
    reload may take (docs/configuration.md). Calls left over from earlier bursts read older
    content, so they cannot pass for this one."""
    before = len(recorder.seen)
    change()
    await eventually(lambda: content in recorder.seen[before:], timeout=timeout)


@BACKENDS
async def test_in_place_write(tmp_path: Path, polling: bool) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\n")
    async with watching(config, polling) as (_, recorder):
        for version in (2, 3):
            if polling:
                await past_mtime_second(config)
            content = f"version: {version}\n"
            await change_seen(recorder, partial(config.write_text, content), content)


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
            if polling:
                await past_mtime_second(config)
            await change_seen(
                recorder, partial(save_like_an_editor, version), f"version: {version}\n"
            )


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
            await change_seen(
                recorder, partial(swap_like_kubelet, version), f"version: {version}\n"
            )


async def test_symlink_to_a_file_elsewhere_watches_its_directory_too(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "real.yaml").write_text("version: 1\n")
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "config.yaml"
    os.symlink(elsewhere / "real.yaml", config)
    async with watching(config, polling=False) as (_, recorder):
        await change_seen(
            recorder, lambda: (elsewhere / "real.yaml").write_text("version: 2\n"), "version: 2\n"
        )


async def test_directory_removed_and_recreated(tmp_path: Path) -> None:
    directory = tmp_path / "conf"
    directory.mkdir()
    config = directory / "config.yaml"
    config.write_text("version: 1\n")
    async with watching(config, polling=False) as (_, recorder):
        await change_seen(recorder, partial(shutil.rmtree, directory), None)  # seen unreadable
        await change_seen(
            recorder, lambda: (directory.mkdir(), config.write_text("version: 2\n")),
            "version: 2\n", timeout=3,
        )
        await armed(recorder)  # the new directory is being watched
        await change_seen(recorder, lambda: config.write_text("version: 3\n"), "version: 3\n")


async def test_a_failing_callback_does_not_stop_the_watcher(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\n")
    async with watching(config, polling=False) as (_, recorder):
        recorder.fail_next = True
        await change_seen(recorder, lambda: config.write_text("version: 2\n"), "version: 2\n")
        assert not recorder.fail_next
        await change_seen(recorder, lambda: config.write_text("version: 3\n"), "version: 3\n")


async def test_changes_during_a_callback_lead_to_one_more_call(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("version: 1\n")
    async with watching(config, polling=False) as (watcher, recorder):
        recorder.gate = asyncio.Event()
        await eventually(lambda: recorder.running == 0, timeout=5.0)  # the arming call is over
        calls = recorder.calls
        config.write_text("version: 2\n")
        await eventually(lambda: recorder.running == 1, timeout=1.0)
        for version in (3, 4, 5):
            config.write_text(f"version: {version}\n")
        # the watcher has seen them while the callback is still blocked
        await eventually(watcher._pending.is_set, timeout=2.0)
        assert recorder.calls == calls + 1
        recorder.gate.set()
        await eventually(lambda: recorder.seen[-1] == "version: 5\n", timeout=1.0)
        assert recorder.calls == calls + 2
        assert recorder.max_running == 1


async def test_stop_ends_run_promptly(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "config.yaml")
    watcher = ConfigWatcher(recorder.path, recorder)
    task = asyncio.create_task(watcher.run())
    await armed(recorder)
    watcher.stop()
    await asyncio.wait_for(task, timeout=1.0)


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
        await quiet(recorder)  # the arming probes' calls are over
        calls = recorder.calls
        for i in range(5):
            (tmp_path / "router.log").write_text(f"line {i}\n")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)  # not synchronisation: a window in which no call may come
        assert recorder.calls == calls
        await change_seen(recorder, partial(config.write_text, "version: 2\n"), "version: 2\n")
