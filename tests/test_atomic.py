"""Atomic saving: a failed or interrupted save never leaves a half-written file or a changed target."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest

import icportrait_studio.imaging.io as imaging_io
from icportrait_studio.errors import InputError
from icportrait_studio.imaging import load_image, save_image


def _boom_after_partial_write(exc: BaseException) -> Callable[..., None]:
    def writer(f: BinaryIO, *_args: object) -> None:
        f.write(b"half an image")
        raise exc

    return writer


@pytest.mark.parametrize(
    ("exc", "expected"), [(OSError(28, "No space left on device"), InputError), (RuntimeError("x"), RuntimeError)]
)
def test_failed_save_leaves_target_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException, expected: type[BaseException]
) -> None:
    target = tmp_path / "keep.png"
    target.write_bytes(b"old bytes")
    monkeypatch.setitem(imaging_io._WRITERS, ".png", _boom_after_partial_write(exc))
    with pytest.raises(expected):
        save_image(target, np.zeros((4, 4, 3), np.float32))
    assert target.read_bytes() == b"old bytes"
    assert sorted(os.listdir(tmp_path)) == ["keep.png"]


def test_save_replaces_existing_and_creates_parent(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper" / "out.png"
    save_image(target, np.full((4, 5, 3), 0.5, np.float32))
    save_image(target, np.full((4, 5, 3), 0.25, np.float32))  # overwrite in place
    assert load_image(target).rgb == pytest.approx(np.full((4, 5, 3), 0.25), abs=2e-3)
    assert sorted(os.listdir(target.parent)) == ["out.png"]


def test_save_errors(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(InputError, match=r"\.bmp.*\.png"):
        save_image(tmp_path / "x.bmp", rgb)
    with pytest.raises(InputError, match="unsupported"):
        save_image(tmp_path / "noext", rgb)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(InputError, match=r"out\.png"):
        save_image(blocker / "out.png", rgb)  # parent is a file: cannot write there
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(InputError, match="folder"):
        save_image(tmp_path / "dir.png", rgb)
    with pytest.raises(ValueError):
        save_image(tmp_path / "bad.png", np.zeros((4, 4), np.float32))
    assert sorted(os.listdir(tmp_path)) == ["a_file", "dir.png"]


def test_atomic_write_gives_saved_files_normal_permissions_and_words_failures(tmp_path) -> None:
    import os
    import stat

    from icportrait_studio.errors import InputError
    from icportrait_studio.imaging.atomic import atomic_write, atomic_write_text

    target = tmp_path / "a.json"
    old = os.umask(0o022)
    try:
        atomic_write_text(target, "{}")
        assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not the temp file's private 0600
        target.chmod(0o640)
        atomic_write_text(target, "[]")
        assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_text() == "[]"  # mode kept
    finally:
        os.umask(old)

    def fail(tmp: str) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(InputError, match=r"Cannot save .*No space left on device"):
        atomic_write(target, fail)
    assert target.read_text() == "[]" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # no temp left


def test_exit_during_a_background_save_leaves_no_temp_file(tmp_path: Path) -> None:
    """The app's worker threads are daemons: quitting while one saves stops it mid-write. The temp file it
    was writing must not stay behind in the user's folder."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import threading
        from pathlib import Path
        from icportrait_studio.imaging.atomic import atomic_write
        started = threading.Event()
        def write(tmp):
            Path(tmp).write_bytes(b"half an image")
            started.set()
            threading.Event().wait()  # a save that never finishes before the process exits
        threading.Thread(target=atomic_write, args=({str(tmp_path / 'out.png')!r}, write), daemon=True).start()
        assert started.wait(10)
        print(sorted(p.name for p in Path({str(tmp_path)!r}).iterdir()))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith("['.out.png.")  # the half-written temp file existed at exit ...
    assert list(tmp_path.iterdir()) == []  # ... and is gone, and no result was published
