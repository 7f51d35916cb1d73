"""Layered export written and read back with independent readers (psd-tools, zipfile + XML, tifffile),
the export and edit commands, and write-back for hosts that use us as their external editor."""

from __future__ import annotations

import io
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from icportrait_studio.imaging.color import encode_from_linear, srgb_to_linear
from icportrait_studio.plugins.api import ExportDocument, ExportLayer
from icportrait_studio.plugins.export import build_document, export_document, read_flat
from icportrait_studio.plugins.registry import PluginRegistry, bundled_plugins_dir

W, H = 37, 29  # odd sizes catch width/height mix-ups


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    reg = PluginRegistry([bundled_plugins_dir()], entry_points=False)
    reg.discover()
    return reg


@pytest.fixture(scope="module")
def icc() -> bytes:
    profile = ImageCms.createProfile("sRGB")
    return ImageCms.ImageCmsProfile(profile).tobytes()


def _stack(icc: bytes | None, bit_depth: int, *, alpha: bool = False) -> ExportDocument:
    rng = np.random.default_rng(7)
    original = rng.random((H, W, 3), dtype=np.float32)
    relit = np.clip(original * 0.6 + 0.05, 0, 1).astype(np.float32)
    view = original[:, ::-1].copy()
    shading = rng.random((12, 15, 3), dtype=np.float32) * 2.0  # shading-sized, above 1: normalised on export
    a = np.linspace(0, 1, W, dtype=np.float32)[None, :].repeat(H, 0) if alpha else None
    return build_document(original, relit=relit, shading=shading, view=view, alpha=a, icc_profile=icc,
                          bit_depth=bit_depth)


def _encoded(doc: ExportDocument, i: int, depth: int) -> np.ndarray:
    return encode_from_linear(doc.layers[i].pixels, depth)


NAMES = ["Original", "Relit", "Shading", "View"]


@pytest.mark.parametrize("depth", [8, 16])
def test_psd_layers_size_pixels_depth_icc(tmp_path: Path, registry: PluginRegistry, icc: bytes, depth: int) -> None:
    from psd_tools import PSDImage
    from psd_tools.constants import Resource

    doc = _stack(icc, depth)
    out = export_document(tmp_path / "p.psd", doc, registry)
    psd = PSDImage.open(out)
    assert psd.size == (W, H) and psd.depth == depth
    assert [layer.name for layer in psd] == NAMES
    assert [layer.visible for layer in psd] == [True, True, False, True]
    assert all(layer.size == (W, H) and layer.offset == (0, 0) for layer in psd)
    assert psd.image_resources.get_data(Resource.ICC_PROFILE) == icc
    top = 255.0 if depth == 8 else 65535.0
    for i, layer in enumerate(psd):
        got = layer.numpy()[..., :3]
        assert np.abs(got * top - _encoded(doc, i, depth)).max() <= 0.51, layer.name
    # The stored composite is what the visible stack shows (View is on top and opaque).
    flat = read_flat(out, registry)
    assert flat.bit_depth == depth and flat.icc_profile == icc
    diff = encode_from_linear(flat.rgb, depth).astype(np.int64) - _encoded(doc, 3, depth)
    assert np.abs(diff).max() <= 1
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # readable like any saved file, not 0600


def test_psd_keeps_alpha_and_opacity(tmp_path: Path, registry: PluginRegistry) -> None:
    from psd_tools import PSDImage

    rng = np.random.default_rng(2)
    a = np.tile(np.linspace(0, 1, W, dtype=np.float32), (H, 1))
    doc = ExportDocument.from_layers([ExportLayer("Base", rng.random((H, W, 3), dtype=np.float32)),
                                      ExportLayer("Half", rng.random((H, W, 3), dtype=np.float32), a, opacity=0.5)])
    psd = PSDImage.open(export_document(tmp_path / "a.psd", doc, registry))
    assert psd[1].opacity == 128
    assert np.abs(psd[1].numpy()[..., 3] - a).max() < 1 / 255 + 1e-6


@pytest.mark.parametrize("depth", [8, 16])
def test_ora_structure_layers_and_merged_image(tmp_path: Path, registry: PluginRegistry, icc: bytes,
                                               depth: int) -> None:
    doc = _stack(icc, depth, alpha=True)
    out = export_document(tmp_path / "p.ora", doc, registry)
    with zipfile.ZipFile(out) as zf:
        infos = zf.infolist()
        assert infos[0].filename == "mimetype" and infos[0].compress_type == zipfile.ZIP_STORED
        assert zf.read("mimetype") == b"image/openraster"
        names = set(zf.namelist())
        assert {"stack.xml", "mergedimage.png", "Thumbnails/thumbnail.png"} <= names
        root = ET.fromstring(zf.read("stack.xml"))
        assert (root.get("w"), root.get("h")) == (str(W), str(H))
        layers = root.find("stack").findall("layer")
        assert [e.get("name") for e in layers] == NAMES[::-1]  # topmost first
        assert [e.get("visibility") for e in layers] == ["visible", "hidden", "visible", "visible"]
        top = 255.0 if depth == 8 else 65535.0
        for elem in layers:
            i = NAMES.index(elem.get("name"))
            png = Image.open(io.BytesIO(zf.read(elem.get("src"))))
            assert png.size == (W, H) and png.info.get("icc_profile") == icc
            arr = np.asarray(Image.open(io.BytesIO(zf.read(elem.get("src"))))) if depth == 8 else None
            if arr is not None:
                assert np.array_equal(arr[..., :3], _encoded(doc, i, 8))
        import cv2

        for elem in layers:  # 16-bit samples via OpenCV (Pillow reduces 16-bit RGB PNGs to 8 bits)
            raw = cv2.imdecode(np.frombuffer(zf.read(elem.get("src")), np.uint8), cv2.IMREAD_UNCHANGED)
            assert raw.dtype == (np.uint8 if depth == 8 else np.uint16)
            rgba = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGBA)
            i = NAMES.index(elem.get("name"))
            assert np.abs(rgba[..., :3].astype(float) - _encoded(doc, i, depth)).max() <= 0
            if i in (0, 1, 3):
                assert np.abs(rgba[..., 3] / top - doc.layers[i].alpha).max() <= 0.5 / top + 1e-6
        thumb = Image.open(io.BytesIO(zf.read("Thumbnails/thumbnail.png")))
        assert max(thumb.size) <= 256
    flat = read_flat(out, registry)
    want_rgb, want_alpha = doc.flatten()
    assert flat.bit_depth == depth and flat.icc_profile == icc
    opaque = want_alpha > 0.05
    assert np.allclose(flat.rgb[opaque], want_rgb[opaque], atol=2e-2 if depth == 8 else 1e-3)
    assert np.allclose(flat.alpha, want_alpha, atol=1 / 255 + 1e-6)


def test_ora_stack_reader_matches_what_was_written(tmp_path: Path, registry: PluginRegistry) -> None:
    doc = _stack(None, 16)
    out = export_document(tmp_path / "s.ora", doc, registry)
    reader = registry.resolve(next(c for c in registry.contributions("exporters") if c.id == "ora"))
    back = sys.modules[reader.__module__].read_document(out)
    assert [layer.name for layer in back.layers] == NAMES and back.bit_depth == 16
    for a, b in zip(back.layers, doc.layers, strict=True):
        assert np.allclose(a.pixels, b.pixels, atol=1e-4) and a.visible == b.visible


def test_tiff_is_flattened_16_bit_with_icc(tmp_path: Path, registry: PluginRegistry, icc: bytes) -> None:
    doc = _stack(icc, 8)  # even from an 8-bit source: the relit float result deserves 16 bits
    out = export_document(tmp_path / "p.tif", doc, registry)
    with tifffile.TiffFile(out) as tf:
        assert len(tf.pages) == 1
        page = tf.pages[0]
        assert page.dtype == np.uint16 and page.shape == (H, W, 3)
        assert bytes(page.tags[34675].value) == icc
        arr = page.asarray()
    assert np.array_equal(arr, encode_from_linear(doc.flatten()[0], 16))


def test_flatten_composites_opacity_and_alpha() -> None:
    base = np.full((2, 2, 3), 0.2, np.float32)
    top = np.full((2, 2, 3), 0.8, np.float32)
    doc = ExportDocument.from_layers([ExportLayer("b", base), ExportLayer("t", top, opacity=0.25)])
    rgb, alpha = doc.flatten()
    assert alpha is None and np.allclose(rgb, 0.2 + 0.25 * 0.6)
    half = ExportDocument.from_layers([ExportLayer("only", top, np.full((2, 2), 0.5, np.float32))])
    rgb, alpha = half.flatten()
    assert np.allclose(rgb, 0.8) and np.allclose(alpha, 0.5)
    with pytest.raises(ValueError, match="document is"):
        ExportDocument((2, 2), [ExportLayer("x", np.zeros((3, 3, 3), np.float32))])


def test_document_from_the_app_model(tmp_path: Path, registry: PluginRegistry) -> None:
    from psd_tools import PSDImage

    from icportrait_studio.core.document import Document
    from icportrait_studio.plugins.export import document_from_app

    base = np.random.default_rng(0).random((H, W, 3), dtype=np.float32)
    doc = Document(base=base, bit_depth=16)
    doc.set_relit(np.full((10, 12, 3), 0.5, np.float32), quality="preview")  # a preview-sized render
    exp = document_from_app(doc)
    assert exp.size == (W, H) and exp.bit_depth == 16 and [layer.name for layer in exp.layers] == ["Original", "Relit"]
    psd = PSDImage.open(export_document(tmp_path / "app.psd", exp, registry))
    assert [layer.size for layer in psd] == [(W, H), (W, H)]


# --- commands -----------------------------------------------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess:
    """The CLI in this process (so the face analysis is shared between calls); stdout/stderr captured."""
    import contextlib

    from icportrait_studio.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse errors
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.mark.slow
def test_export_command_writes_all_three_formats(tmp_path: Path, sample_path: Path) -> None:
    from psd_tools import PSDImage

    outs = [tmp_path / "p.psd", tmp_path / "p.ora", tmp_path / "p.tif"]
    for out in outs:
        r = _run("export", str(sample_path), "-o", str(out), "--preset", "rembrandt")
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    psd = PSDImage.open(outs[0])
    assert [layer.name for layer in psd] == ["Original", "Relit", "Shading"] and psd.size == (512, 512)
    original = np.asarray(Image.open(sample_path).convert("RGB"))
    assert np.abs(psd[0].numpy()[..., :3] * 255 - original).max() <= 0.51
    assert np.abs(psd[1].numpy()[..., :3] * 255 - original).mean() > 3  # relit differs from the photo
    with zipfile.ZipFile(outs[1]) as zf:
        names = [e.get("name") for e in ET.fromstring(zf.read("stack.xml")).iter("layer")]
    assert names == ["Shading", "Relit", "Original"]
    assert tifffile.TiffFile(outs[2]).pages[0].dtype == np.uint16
    bad = _run("export", str(sample_path), "-o", str(tmp_path / "p.xyz"), "--preset", "loop")
    assert bad.returncode == 2 and "no exporter" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_edit_command_relights_a_16_bit_tiff_in_place(tmp_path: Path, sample_path: Path, icc: bytes) -> None:
    src = np.asarray(Image.open(sample_path).convert("RGB")).astype(np.uint16) * 257 + 3
    target = tmp_path / "from_lightroom.tif"
    tifffile.imwrite(target, src, photometric="rgb", extratags=[(34675, 7, len(icc), icc, True)])
    r = _run("edit", str(target), "--preset", "loop")
    assert r.returncode == 0, r.stderr
    assert not [p for p in tmp_path.iterdir() if p.name != target.name]  # atomic: no temp file left behind
    with tifffile.TiffFile(target) as tf:
        page = tf.pages[0]
        assert page.dtype == np.uint16 and page.shape == src.shape
        assert bytes(page.tags[34675].value) == icc
        out = page.asarray()
    assert np.abs(out.astype(np.int64) - src).mean() > 3 * 257  # relit
    assert len(np.unique(out[..., 1])) > 256  # still 16-bit precision, not 8-bit values scaled up


def test_edit_command_opens_the_app_when_it_can(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import icportrait_studio.commands.edit as edit_cmd
    from icportrait_studio.plugins.edit_target import EditTarget

    target = tmp_path / "x.png"
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(target)
    monkeypatch.setattr(edit_cmd, "_app_supports_edit_target", lambda: None)
    r = _run("edit", str(target))  # an app without "external editor" mode, and no rig: a clear message
    assert r.returncode == 2 and "--preset" in r.stderr
    calls: list[tuple] = []

    def run_app(image_path: str | None = None, *, edit_target: EditTarget, exit_on_close: bool = False) -> int:
        calls.append((image_path, edit_target, exit_on_close))
        return 0

    monkeypatch.setattr(edit_cmd, "_app_supports_edit_target", lambda: run_app)
    assert _run("edit", str(target), "--exit-on-close").returncode == 0
    (path, et, exit_on_close), = calls
    assert path == str(target) and isinstance(et, EditTarget) and et.path == target and exit_on_close


def test_edit_target_keeps_format_depth_and_size(tmp_path: Path, icc: bytes) -> None:
    from icportrait_studio.errors import InputError
    from icportrait_studio.plugins.edit_target import EditTarget

    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(png, icc_profile=icc)
    t = EditTarget.open(png)
    assert t.bit_depth == 8
    t.write_back(np.full((4, 5, 3), srgb_to_linear(np.float32(0.5)), np.float32))
    im = Image.open(png)
    assert im.info.get("icc_profile") == icc and np.asarray(im)[0, 0, 0] in (127, 128)
    with pytest.raises(InputError, match="same size"):
        t.write_back(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(InputError, match="cannot be written back"):
        EditTarget.open(tmp_path / "x.gif")
