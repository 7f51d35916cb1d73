"""File ▸ Apply Edit to Photos…: the dialog, the jobs, the summary, and nothing replaced unasked. Offscreen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QDialogButtonBox, QMessageBox
from test_ui_app import SAMPLE, WAIT_MS, dialogs, full_render_shown, isolated_config, make_window, open_sample

from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.imaging.io import load_image
from icportrait_studio.ui.batch_actions import BatchChoice, BatchDialog
from icportrait_studio.ui.main_window import MainWindow

__all__ = ["dialogs", "isolated_config"]  # fixtures re-used from test_ui_app

PNG8 = "PNG 8-bit (*.png)"
TIFF16 = "TIFF 16-bit (*.tif *.tiff)"


@pytest.fixture
def window(qtbot, dialogs):  # type: ignore[no-untyped-def]
    win = make_window(qtbot)
    yield win
    win.close()


@pytest.fixture
def shoot(tmp_path: Path) -> Path:
    """Two frames of a shoot and one damaged file."""
    folder = tmp_path / "shoot"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "frame1.png")
    shutil.copy(SAMPLE, folder / "frame2.png")
    (folder / "frame3.png").write_bytes(SAMPLE.read_bytes()[:4000])
    return folder


def _ended(win: MainWindow) -> bool:
    return not win.ext.batch.runs and win.jobs_idle()


def test_dialog_counts_photos_and_shows_the_names_it_will_write(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dialog = BatchDialog(None, photos=[], folder="", file_type=TIFF16)
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert not ok.isEnabled()  # nothing to do yet
    dialog.add_photos([str(tmp_path / "IMG_7.jpg"), str(tmp_path / "IMG_8.jpg"), str(tmp_path / "IMG_7.jpg")])
    assert dialog.paths() == [str(tmp_path / "IMG_7.jpg"), str(tmp_path / "IMG_8.jpg")]  # each once
    assert dialog.folder.text() == str(tmp_path / "relit")  # proposed beside the photos
    assert ok.isEnabled() and ok.text() == "Apply to 2 Photos"
    assert dialog.example.text() == "e.g. IMG_7_relit.tif"
    dialog.suffix.setText("-key")
    assert dialog.example.text() == "e.g. IMG_7-key.tif"
    dialog.photos.item(0).setSelected(True)
    dialog.remove_selected()
    assert ok.text() == "Apply to 1 Photo"
    dialog.folder.setText("")
    assert not ok.isEnabled()
    assert dialog.choice() == BatchChoice((str(tmp_path / "IMG_8.jpg"),), "", TIFF16, "-key")


def test_applies_the_rig_to_each_photo_and_reports_the_bad_one(window: MainWindow, qtbot, shoot: Path,  # type: ignore[no-untyped-def]
                                                                monkeypatch) -> None:
    open_sample(window, qtbot)
    window.doc.rig = LightRig(lights=(Light(azimuth=70, elevation=0),), ambient=0.02)
    shown = window.doc.relit_layer.pixels.copy()
    out = shoot / "relit"
    photos = tuple(str(shoot / f"frame{i}.png") for i in (1, 2, 3))
    run = window.ext.batch.start(BatchChoice(photos, str(out), TIFF16, "_k"))
    assert run is not None and run.total == 3 and window.ext.batch.busy() == 3
    qtbot.waitUntil(lambda: _ended(window), timeout=WAIT_MS * 3)
    assert sorted(p.name for p in out.iterdir()) == ["frame1_k.tif", "frame2_k.tif"]  # nothing for the bad one
    first = load_image(out / "frame1_k.tif")
    assert first.bit_depth == 16
    lm = window._analysis.landmarks  # the same picture: the open photo's face is where frame1's is
    x0, x1 = np.percentile(lm[:, 0], [10, 90]).astype(int)
    y0, y1 = np.percentile(lm[:, 1], [20, 80]).astype(int)
    face = first.rgb[y0:y1, x0:x1].mean(axis=2)
    mid = (x1 - x0) // 2
    assert face[:, mid:].mean() > 1.3 * face[:, :mid].mean()  # lit from the image's right, as the rig says
    assert run.failed and run.failed[0][0].name == "frame3.png" and len(run.written) == 2
    box = window.ext.batch.summary_box
    assert box is not None and "2 of 3" in box.text() and "1 failed" in box.text()
    assert "frame3.png" in box.detailedText()
    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    next(b for b in box.buttons() if b.text() == "Show Folder").click()
    assert opened == [str(out)]
    assert "2 of 3" in window.statusBar().currentMessage()
    assert np.array_equal(window.doc.relit_layer.pixels, shown)  # the open photo is untouched
    box.close()


def test_existing_results_are_replaced_only_when_asked(window: MainWindow, qtbot, shoot: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    open_sample(window, qtbot)
    out = shoot / "relit"
    out.mkdir()
    (out / "frame1_relit.png").write_bytes(b"an earlier result")
    choice = BatchChoice((str(shoot / "frame1.png"),), str(out), PNG8)
    asked: list[list[Path]] = []
    monkeypatch.setattr(window.ext.batch, "_ask_existing", lambda there: asked.append(there))  # Cancel
    assert window.ext.batch.start(choice) is None
    assert asked == [[out / "frame1_relit.png"]] and window.jobs_idle()
    assert window.ext.batch.start(choice, existing="keep") is not None
    qtbot.waitUntil(lambda: _ended(window), timeout=WAIT_MS)
    assert (out / "frame1_relit.png").read_bytes() == b"an earlier result"
    assert load_image(out / "frame1_relit (2).png").rgb.shape[:2] == (512, 512)
    assert window.ext.batch.start(choice, existing="replace") is not None
    qtbot.waitUntil(lambda: _ended(window), timeout=WAIT_MS)
    assert load_image(out / "frame1_relit.png").rgb.shape[:2] == (512, 512)
    assert sorted(p.name for p in out.iterdir()) == ["frame1_relit (2).png", "frame1_relit.png"]


def test_a_running_batch_asks_before_quitting_and_can_be_cancelled(window: MainWindow, qtbot, shoot: Path,  # type: ignore[no-untyped-def]
                                                                  dialogs: dict) -> None:
    open_sample(window, qtbot)
    photos = (str(shoot / "frame1.png"), str(shoot / "frame2.png")) * 3  # the same frames, numbered apart
    run = window.ext.batch.start(BatchChoice(photos, str(shoot / "out"), PNG8))
    assert run is not None and run.total == 6
    dialogs["question"] = QMessageBox.StandardButton.No
    window.close()
    assert window.isVisible()  # the user said no: the window stays and the batch goes on
    assert any("still waiting" in text for kind, _t, text in dialogs["shown"] if kind == "question")
    window.cancel_all_jobs()
    qtbot.waitUntil(lambda: _ended(window), timeout=WAIT_MS)
    assert run.cancelled >= 1 and run.ended == 6
    assert "cancelled" in window.statusBar().currentMessage()
    assert window.ext.batch.busy() == 0
    assert full_render_shown(window)


def test_several_photos_dropped_on_an_open_photo_are_offered_its_edit(window: MainWindow, qtbot, shoot: Path,  # type: ignore[no-untyped-def]
                                                                    monkeypatch) -> None:
    shown: list[list[str]] = []

    def exec_(dialog: BatchDialog) -> int:
        shown.append(dialog.paths())
        return 0  # Cancel

    monkeypatch.setattr(BatchDialog, "exec", exec_)
    frames = [str(shoot / "frame1.png"), str(shoot / "frame2.png")]
    with qtbot.waitSignal(window.documentOpened, timeout=WAIT_MS):
        window._on_files_dropped(frames)  # nothing open yet: the first opens
    assert "1 more dropped" in window.statusBar().currentMessage() and not shown
    qtbot.waitUntil(lambda: full_render_shown(window), timeout=WAIT_MS)
    window._on_files_dropped([*frames, str(shoot / "old.icps")])  # now they are the rest of the shoot
    assert shown == [frames] and window.jobs_idle() and not window.ext.batch.runs
    assert window.doc.path == frames[0]


def test_a_relative_folder_lies_beside_the_photos(window: MainWindow, qtbot, shoot: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    open_sample(window, qtbot)
    monkeypatch.chdir(shoot.parent)  # not where the photos are
    run = window.ext.batch.start(BatchChoice((str(shoot / "frame1.png"),), "graded", PNG8))
    assert run is not None and run.folder == str(shoot / "graded")
    qtbot.waitUntil(lambda: _ended(window), timeout=WAIT_MS)
    assert (shoot / "graded" / "frame1_relit.png").exists() and not (shoot.parent / "graded").exists()
    box = window.ext.batch.summary_box
    if box is not None:
        box.close()


def test_photos_are_read_as_linear_light_when_the_open_one_was(window: MainWindow, qtbot, shoot: Path) -> None:  # type: ignore[no-untyped-def]
    """A shoot of linear captures whose files do not say so (machine vision, the Yale faces): the user opened
    one with File ▸ Open as Linear Light; its siblings must be read the same way, not as sRGB."""
    photos = (str(shoot / "frame1.png"),)
    for encoding, expected in (("auto", "srgb"), ("linear", "linear")):
        with qtbot.waitSignal(window.documentOpened, timeout=WAIT_MS):
            window.open_path(str(SAMPLE), encoding=encoding)
        qtbot.waitUntil(lambda: full_render_shown(window), timeout=WAIT_MS)
        window.doc.dirty = False  # the next open replaces it without asking
        out = shoot / f"out_{encoding}"
        run = window.ext.batch.start(BatchChoice(photos, str(out), PNG8, ""))
        assert run is not None
        qtbot.waitUntil(lambda: _ended(window), timeout=WAIT_MS * 2)
        assert [o.info["encoding"] for o in run.written] == [expected]
        assert load_image(out / "frame1.png").encoding == expected  # written as it was read (gAMA 1.0 if linear)
        dialog = BatchDialog(None, photos=list(photos), folder=str(out), file_type=PNG8,
                             linear=window.doc.encoding == "linear")
        qtbot.addWidget(dialog)
        assert ("read as linear light" in dialog.note.text()) is (expected == "linear")
