"""The canvas shows a photo tagged with a wide-gamut profile in that profile's colours, not as raw codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QColorSpace
from test_ui_app import SAMPLE, WAIT_MS, dialogs, isolated_config, open_sample, window

from icportrait_studio.imaging.display_profile import display_transform
from icportrait_studio.ui import work
from icportrait_studio.ui.main_window import MainWindow

__all__ = ["dialogs", "isolated_config", "window"]  # fixtures re-used from test_ui_app


@pytest.fixture(autouse=True)
def _screen_back_to_srgb():  # type: ignore[no-untyped-def]
    """The display profile is per process: later tests' photos must not be shown through this one's."""
    yield
    work.set_display_profile(None)


def _shown_rgb(win: MainWindow, uid: int) -> np.ndarray:
    arr = win.display._layers[uid].array  # Qt's native 32-bit layout: B, G, R, A on little-endian
    return arr[..., 2::-1]


def test_an_adobe_rgb_photo_is_shown_in_its_own_colours(window: MainWindow, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    icc = bytes(QColorSpace(QColorSpace.NamedColorSpace.AdobeRgb).iccProfile().data())
    codes = np.asarray(Image.open(SAMPLE).convert("RGB"))
    tagged = tmp_path / "adobe.png"
    Image.fromarray(codes).save(tagged, icc_profile=icc)

    open_sample(window, qtbot, tagged)
    base = window.doc.layer_of_kind("base")
    qtbot.waitUntil(lambda: base.uid in window.display._layers, timeout=WAIT_MS)
    shown = _shown_rgb(window, base.uid)
    expected = display_transform(icc).apply(codes)  # type: ignore[union-attr]
    assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 1
    assert np.abs(shown.astype(int) - codes.astype(int)).mean() > 2  # the raw codes would look dull
    assert window.props_panel.value("Image", "Colour profile") == "Adobe RGB"

    open_sample(window, qtbot)  # an untagged photo next: its codes are shown as they are
    base = window.doc.layer_of_kind("base")
    qtbot.waitUntil(lambda: base.uid in window.display._layers, timeout=WAIT_MS)
    assert np.array_equal(_shown_rgb(window, base.uid), codes)
    assert window.props_panel.value("Image", "Colour profile") == "none (sRGB)"


def test_a_damaged_profile_is_named_as_not_usable_and_the_codes_shown_as_srgb(window: MainWindow, qtbot,  # type: ignore[no-untyped-def]
                                                                             tmp_path: Path) -> None:
    codes = np.asarray(Image.open(SAMPLE).convert("RGB"))
    damaged = tmp_path / "damaged.png"
    Image.fromarray(codes).save(damaged, icc_profile=b"\0" * 200)
    open_sample(window, qtbot, damaged)
    base = window.doc.layer_of_kind("base")
    qtbot.waitUntil(lambda: base.uid in window.display._layers, timeout=WAIT_MS)
    assert np.array_equal(_shown_rgb(window, base.uid), codes)
    assert window.props_panel.value("Image", "Colour profile") == "embedded (not usable: shown as sRGB)"


def test_a_prophoto_photo_is_relit_at_its_own_gamma(window: MainWindow, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """What Lightroom hands an external editor: the renders get the profile's gamma (imaging/scene_tone.py)."""
    icc = bytes(QColorSpace(QColorSpace.NamedColorSpace.ProPhotoRgb).iccProfile().data())
    tagged = tmp_path / "prophoto.png"
    Image.open(SAMPLE).convert("RGB").save(tagged, icc_profile=icc)
    open_sample(window, qtbot, tagged)
    sources = (window.renderer.full_source, window.renderer.preview_source, window.renderer.analysis_source)
    assert all(s is not None and s.tone == pytest.approx(1.8, abs=1e-3) for s in sources)
    assert window.props_panel.value("Image", "Colour profile") == "ProPhoto RGB"
    assert window.props_panel.value("Image", "Values") == "gamma 1.80"
    open_sample(window, qtbot)
    assert window.renderer.full_source.tone is None  # type: ignore[union-attr]


def test_diffusion_previews_are_shown_in_the_photos_colours_too() -> None:
    from icportrait_studio.imaging.color import decode_to_linear
    from icportrait_studio.ui.extensions import preview_rgba

    icc = bytes(QColorSpace(QColorSpace.NamedColorSpace.AdobeRgb).iccProfile().data())
    lin = decode_to_linear(np.asarray(Image.open(SAMPLE).convert("RGB"))[::8, ::8])
    plain = preview_rgba(lin)
    work.set_display_profile(icc)
    shown = preview_rgba(lin)
    assert plain is not None and shown is not None and shown.shape == plain.shape and np.all(shown[..., 3] == 255)
    assert np.array_equal(shown[..., :3], display_transform(icc).from_linear(lin))  # type: ignore[union-attr]
    assert not np.array_equal(shown, plain)


def test_an_image_imported_into_a_prophoto_photo_is_converted_into_its_profile(window: MainWindow, qtbot,  # type: ignore[no-untyped-def]
                                                                              tmp_path: Path) -> None:
    from icportrait_studio.imaging.color import decode_to_linear
    from icportrait_studio.imaging.profile_convert import convert_between

    icc = bytes(QColorSpace(QColorSpace.NamedColorSpace.ProPhotoRgb).iccProfile().data())
    tagged = tmp_path / "prophoto.png"
    Image.open(SAMPLE).convert("RGB").save(tagged, icc_profile=icc)
    open_sample(window, qtbot, tagged)
    n = len(window.doc.layers)
    window.import_layer(str(SAMPLE))  # an untagged (sRGB) image
    qtbot.waitUntil(lambda: len(window.doc.layers) == n + 1, timeout=WAIT_MS)
    layer = next(x for x in window.doc.layers if x.kind == "imported")
    raw = decode_to_linear(np.asarray(Image.open(SAMPLE).convert("RGB")))
    np.testing.assert_array_equal(layer.pixels, convert_between(raw, None, icc))
    assert np.abs(layer.pixels - raw).mean() > 0.01  # sRGB's colours, not its codes, in ProPhoto's space


def test_export_for_the_web_converts_to_srgb(window: MainWindow, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from icportrait_studio.imaging.display_profile import profile_name
    from icportrait_studio.imaging.io import load_image
    from icportrait_studio.imaging.profile_convert import convert_between
    from icportrait_studio.ui.actions import EXPORT_FILTERS

    assert any(to_srgb for _ext, _bits, to_srgb in EXPORT_FILTERS.values())
    icc = bytes(QColorSpace(QColorSpace.NamedColorSpace.ProPhotoRgb).iccProfile().data())
    tagged = tmp_path / "prophoto.png"
    Image.open(SAMPLE).convert("RGB").save(tagged, icc_profile=icc)
    open_sample(window, qtbot, tagged)
    own, web = tmp_path / "own.png", tmp_path / "web.png"
    window.export_image(str(own))
    window.export_image(str(web), to_srgb=True)
    qtbot.waitUntil(lambda: own.exists() and web.exists() and window.jobs_idle(), timeout=WAIT_MS)
    a, b = load_image(own), load_image(web)
    assert a.icc_profile == icc and "sRGB" in (profile_name(b.icc_profile) or "")
    expected = convert_between(a.rgb, icc, None)
    assert expected is not None
    from icportrait_studio.imaging.color import encode_from_linear

    # ``own`` was quantised to 8-bit ProPhoto codes first: a few sRGB codes apart in dark saturated colours
    diff = np.abs(encode_from_linear(b.rgb, 8).astype(int) - encode_from_linear(expected, 8).astype(int))
    assert diff.mean() < 0.2 and np.percentile(diff, 99.9) <= 3


def test_the_export_dialogs_type_sets_the_extension(window: MainWindow, qtbot, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The dialog proposes name_relit.png; picking the web JPEG type writes name_relit.jpg, not a PNG."""
    from PySide6.QtWidgets import QFileDialog

    from icportrait_studio.imaging.display_profile import profile_name
    from icportrait_studio.imaging.io import load_image

    open_sample(window, qtbot)
    for name, chosen, written in (("a_relit.png", "JPEG for the web, converted to sRGB (*.jpg *.jpeg)", "a_relit.jpg"),
                                  ("b_relit.jpeg", "JPEG (*.jpg *.jpeg)", "b_relit.jpeg"),
                                  ("c_relit", "TIFF 16-bit (*.tif *.tiff)", "c_relit.tif")):
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *_a, n=name, c=chosen: (str(tmp_path / n), c))
        window.export_image()
        qtbot.waitUntil(lambda w=written: (tmp_path / w).exists() and window.jobs_idle(), timeout=WAIT_MS)
    assert sorted(p.name for p in tmp_path.glob("*_relit*")) == ["a_relit.jpg", "b_relit.jpeg", "c_relit.tif"]
    assert "sRGB" in (profile_name(load_image(tmp_path / "a_relit.jpg").icc_profile) or "")
    assert load_image(tmp_path / "c_relit.tif").bit_depth == 16


@pytest.mark.parametrize(("path", "chosen", "ext", "expected"), [
    ("/d/x_layers.psd", "OpenRaster (*.ora)", ".ora", "/d/x_layers.ora"),
    ("/d/x.ora", "OpenRaster (*.ora)", ".ora", "/d/x.ora"),
    ("/d/x", "Photoshop PSD (*.psd)", ".psd", "/d/x.psd"),
    ("/d/x.JPG", "JPEG (*.jpg *.jpeg)", ".jpg", "/d/x.JPG"),
    ("/d/v1.2", "PNG 8-bit (*.png)", ".png", "/d/v1.2.png"),
])
def test_with_type_extension(path: str, chosen: str, ext: str, expected: str) -> None:
    from icportrait_studio.ui.export_actions import with_type_extension

    assert with_type_extension(path, chosen, ext) == expected
