"""Download verification: damaged images are caught without decoding every pixel."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image

from wanflow._exceptions import MediaError
from wanflow.media.probe import probe, verify_complete
from wanflow.sim.app import flip_bytes


def _noise(path: Path, fmt: str) -> bytes:
    Image.effect_noise((640, 480), 60).convert("RGB").save(path, format=fmt)
    return path.read_bytes()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_an_intact_image_passes_and_is_measured(tmp_path, fmt):
    path = tmp_path / "ok.img"
    _noise(path, fmt)
    verify_complete(path)
    info = probe(path)
    assert (info.width, info.height) == (640, 480)
    assert info.media_type == f"image/{fmt.lower()}"


def test_every_png_with_flipped_bytes_is_caught(tmp_path):
    """The simulator's damage (256 inverted bytes, right length, valid header) breaks a chunk CRC."""
    path = tmp_path / "result.png"
    data = _noise(path, "PNG")
    rng = random.Random(7)
    for _ in range(20):
        path.write_bytes(flip_bytes(data, rng))
        with pytest.raises(MediaError, match="damaged image"):
            verify_complete(path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("keep", [0.3, 0.7, 0.99])
def test_a_truncated_image_is_caught(tmp_path, fmt, keep):
    path = tmp_path / "result.img"
    data = _noise(path, fmt)
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(MediaError, match="damaged image"):
        verify_complete(path)


def test_a_file_changed_after_verification_is_probed_afresh(tmp_path):
    """What verify_complete learned is tied to the file's version, never to its name."""
    path = tmp_path / "result.png"
    data = _noise(path, "PNG")
    verify_complete(path)
    path.write_bytes(data[: len(data) // 2])  # another version of the file under the same name
    with pytest.raises(MediaError):
        probe(path)


# --- what is made durable, and where -------------------------------------------------------------

def test_a_duplicate_download_is_dropped_without_an_fsync(tmp_path, monkeypatch):
    import os

    from wanflow.state.store import ArtifactStore

    store = ArtifactStore(tmp_path / "objects")
    (tmp_path / "first.png").write_bytes(b"\x89PNG same bytes")
    first = store.put_file(tmp_path / "first.png", "image/png", move=True)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    (tmp_path / "second.png").write_bytes(b"\x89PNG same bytes")
    second = store.put_file(tmp_path / "second.png", "image/png", move=True)
    assert second.sha256 == first.sha256 and second.path == first.path
    assert synced == [] and not (tmp_path / "second.png").exists()
    (tmp_path / "third.png").write_bytes(b"\x89PNG other bytes")
    store.put_file(tmp_path / "third.png", "image/png", move=True)
    assert len(synced) == 1  # a new object is fsync'd before its rename


def test_journal_events_written_in_a_worker_thread_are_durable_when_awaited(tmp_path, monkeypatch):
    import os
    import threading

    import anyio

    from wanflow.state.journal import Journal, KeyJournal

    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(threading.current_thread().name), real_fsync(fd))[1])
    journal = Journal(tmp_path / "journal")
    step = KeyJournal(journal, "d" * 64, "hero", "dashscope")

    async def events() -> None:
        entry = await step.record_intent("f" * 64)
        assert len(synced) == 2 and journal.get("d" * 64).task_id is None  # the log and its folder, before any create
        await step.record_submitted(entry, "task-7", "req-1")
        assert len(synced) == 3 and journal.get("d" * 64).task_id == "task-7"

    anyio.run(events)
    assert threading.main_thread().name not in synced  # the event loop never waited on the disk
