"""What a replay publishes at its start, or why it does not: `signaling.replayer.replay_files`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from media.replay import ReplayFiles
from scheduler.recordings import Recording
from signaling.replayer import replay_files


def _recording(folder: Path) -> Recording:
    camera = folder / "lead.webm"
    camera.write_bytes(b"\x1a\x45\xdf\xa3")
    return Recording(id=7, lesson_id=3, participant="lead", dump_path=str(folder / "lead.rtpdump"),
                     path=str(camera), screen_path=str(folder / "gone-screen.webm"), container="webm",
                     state="ready", started_at=0.0, finished_at=20.0, duration_s=20.0, size_bytes=4,
                     sha256="00", tracks={"camera": 1}, frames_dropped=0, error=None, review="approved",
                     review_uses=("replay",))


def test_an_approved_recording_on_the_disk_is_published_without_its_missing_courseware(tmp_path: Path) -> None:
    got = replay_files(_recording(tmp_path))
    assert got == ReplayFiles(tmp_path / "lead.webm", None)


def test_a_recording_withdrawn_or_gone_is_not_pushed_to_classrooms(tmp_path: Path) -> None:
    rec = _recording(tmp_path)
    assert "does not exist" in str(replay_files(None))
    assert "not ready" in str(replay_files(replace(rec, state="failed")))
    # a reviewer refused it after the replay was scheduled, or approved it only as a model lesson
    assert "no longer approved" in str(replay_files(replace(rec, review="refused", review_uses=())))
    assert "no longer approved" in str(replay_files(replace(rec, review_uses=("model",))))
    Path(rec.path or "").unlink()
    assert "missing" in str(replay_files(rec))
