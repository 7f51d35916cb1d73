"""Landmarks carried in our PNGs: written with a result, reused when that file is edited again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from icportrait_studio.imaging.io import load_image, save_image


def _landmarks(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 60, (478, 3)).astype(np.float32)


def _image(h: int = 40, w: int = 64) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.dstack([xs / w, ys / h, 0.5 * np.ones_like(xs)]).astype(np.float32)


@pytest.mark.parametrize(("bits", "with_alpha"), [(8, False), (16, False), (8, True), (16, True)])
def test_png_round_trips_its_landmarks(tmp_path: Path, bits: int, with_alpha: bool) -> None:
    lm = _landmarks()
    alpha = np.linspace(0, 1, 40 * 64, dtype=np.float32).reshape(40, 64) if with_alpha else None
    p = tmp_path / "out.png"
    save_image(p, _image(), alpha=alpha, bit_depth=bits, landmarks=lm)
    got = load_image(p).landmarks
    assert got is not None and np.array_equal(got, lm)
    plain = tmp_path / "plain.png"
    save_image(plain, _image(), alpha=alpha, bit_depth=bits)
    assert load_image(plain).landmarks is None


def test_an_edited_file_is_analysed_afresh(tmp_path: Path) -> None:
    """A record whose pixels changed since (an editor kept the chunk, touched one pixel) is ignored."""
    from icportrait_studio.imaging import carried_landmarks as cl
    from icportrait_studio.imaging.png_chunks import insert_png_ztxt, read_png_ztxt

    p = tmp_path / "out.png"
    save_image(p, _image(), landmarks=_landmarks())
    record = read_png_ztxt(str(p), cl.KEYWORD)
    assert record is not None
    img = _image()
    img[5, 5] = 0.0
    q = tmp_path / "edited.png"
    save_image(q, img)
    q.write_bytes(insert_png_ztxt(q.read_bytes(), cl.KEYWORD, record))
    assert read_png_ztxt(str(q), cl.KEYWORD) == record
    assert load_image(q).landmarks is None
    # a damaged record is ignored too, never an error
    r = tmp_path / "damaged.png"
    save_image(r, _image())
    r.write_bytes(insert_png_ztxt(r.read_bytes(), cl.KEYWORD, '{"v": 1, "digest": "x", "landmarks": "!!"}'))
    assert load_image(r).landmarks is None
    # and a record of another shape altogether opens the photo all the same
    for text in ("[1, 2]", '"x"', "7", "null", '{"v": [1]}', "{not json"):
        s = tmp_path / "odd.png"
        save_image(s, _image())
        s.write_bytes(insert_png_ztxt(s.read_bytes(), cl.KEYWORD, text))
        assert load_image(s).landmarks is None


@pytest.mark.parametrize("ext", [".tif", ".jpg"])
def test_tiff_and_jpeg_carry_landmarks_too(tmp_path: Path, ext: str) -> None:
    """TIFF in a private tag (a digest of the samples written); JPEG in a comment, with a digest of the
    samples a decoder reads back (JPEG is lossy). A file whose samples changed since is analysed afresh
    even when the record travelled with it."""
    from PIL import Image

    from icportrait_studio.imaging.png_chunks import insert_jpeg_comment
    from icportrait_studio.imaging.writers import TAG_NOTE, _write_tiff

    lm = _landmarks()
    p, plain, edited = tmp_path / f"out{ext}", tmp_path / f"plain{ext}", tmp_path / f"edited{ext}"
    save_image(p, _image(), landmarks=lm)
    got = load_image(p).landmarks
    assert got is not None and np.array_equal(got, lm)
    save_image(plain, _image())
    assert load_image(plain).landmarks is None
    if ext == ".tif":
        import tifffile

        with tifffile.TiffFile(p) as tf:
            record = tf.pages[0].tags[TAG_NOTE].value
            samples = tf.pages[0].asarray()
        samples[3, 3] = 0
        with open(edited, "wb") as f:
            _write_tiff(f, samples, None, None, 95, note=record)
    else:  # an editor that keeps the comment but encodes the pixels again
        with Image.open(p) as im:
            record = im.info["comment"]
        save_image(edited, load_image(p).rgb, quality=80)
        edited.write_bytes(insert_jpeg_comment(edited.read_bytes(), record))
    assert load_image(edited).landmarks is None


@pytest.mark.parametrize(("quality", "with_alpha"), [(90, False), (90, True), (100, True)])
def test_webp_carries_landmarks_in_xmp(tmp_path: Path, quality: int, with_alpha: bool) -> None:
    """Lossy and lossless WebP, with and without alpha: the record sits in an XMP packet (valid XMP)
    with a digest of the samples a decoder reads back; re-encoded pixels are analysed afresh."""
    import xml.etree.ElementTree as ET

    from PIL import Image

    from icportrait_studio.imaging import carried_landmarks as cl

    lm = _landmarks()
    alpha = np.linspace(0, 1, 40 * 64, dtype=np.float32).reshape(40, 64) if with_alpha else None
    p, plain, edited = tmp_path / "out.webp", tmp_path / "plain.webp", tmp_path / "edited.webp"
    save_image(p, _image(), alpha=alpha, landmarks=lm, quality=quality)
    got = load_image(p).landmarks
    assert got is not None and np.array_equal(got, lm)
    with Image.open(p) as im:
        xmp = im.info["xmp"]
    root = ET.fromstring(xmp.decode("utf-8").split("?>", 1)[1].rsplit("<?xpacket", 1)[0])  # parses as XML
    desc = root.find(".//{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
    assert desc is not None and json.loads(desc.attrib[f"{{{cl.XMP_NAMESPACE}}}landmarks"])["v"] == cl.VERSION
    save_image(plain, _image(), alpha=alpha, quality=quality)
    assert load_image(plain).landmarks is None
    # an editor that keeps the metadata but encodes the pixels again
    Image.open(p).save(edited, format="WEBP", quality=60, xmp=xmp)
    assert load_image(edited).landmarks is None


def test_carried_landmarks_replace_the_detection(sample_rgb, sample_analysis) -> None:
    from icportrait_studio.geometry.analysis import analyze

    moved = sample_analysis.landmarks.copy()
    moved[:, 0] += 3.0
    a = analyze(sample_rgb, landmarks=moved)
    assert np.allclose(a.landmarks, moved, atol=1e-3)
    assert a.faces_found == 1


@pytest.mark.slow
def test_cli_turn_and_back_through_files_uses_the_carried_landmarks(tmp_path: Path, sample_path: Path) -> None:
    """Two CLI runs (+25° then −25°): the second reuses the landmarks the first wrote, and comes back
    much closer to the input than a re-detection on the turned face does."""
    import cv2

    from icportrait_studio.cli import main
    from icportrait_studio.geometry.analysis import analyze

    there, back, report = tmp_path / "there.png", tmp_path / "back.png", tmp_path / "r.json"
    assert main(["view", str(sample_path), "-o", str(there), "--yaw", "25", "-q"]) == 0
    assert load_image(there).landmarks is not None
    assert main(["view", str(there), "-o", str(back), "--yaw", "-25", "-q", "--report", str(report)]) == 0
    assert json.loads(report.read_text())["landmarks_carried"] is True
    stripped, back2 = tmp_path / "stripped.png", tmp_path / "back2.png"
    save_image(stripped, load_image(there).rgb)
    assert main(["view", str(stripped), "-o", str(back2), "--yaw", "-25", "-q", "--report", str(report)]) == 0
    assert json.loads(report.read_text())["landmarks_carried"] is False

    src = load_image(sample_path).rgb
    a = analyze(src)
    face = cv2.resize(a.face_mask.astype(np.uint8), (src.shape[1], src.shape[0]),
                      interpolation=cv2.INTER_NEAREST).astype(bool)

    def err(p: Path) -> float:
        return float(np.abs(load_image(p).rgb - src)[face].mean())

    assert err(back) < 0.75 * err(back2)


def test_relight_file_analyses_a_rewritten_path_again(tmp_path: Path, sample_rgb) -> None:
    """The API caches analyses per image: a path rewritten with another picture (a chained edit that
    writes back to its input) must not reuse the old picture's face."""
    from icportrait_studio.api import LightRig, relight_file

    p, out = tmp_path / "in.png", tmp_path / "out.png"
    keep = LightRig(keep_original=1.0)
    save_image(p, sample_rgb)
    first = relight_file(p, out, keep).landmarks
    save_image(p, np.ascontiguousarray(sample_rgb[:, ::-1]))  # the mirror image, same size
    second = relight_file(p, out, keep).landmarks
    w = sample_rgb.shape[1]
    nose = 1
    assert abs(second[nose, 0] - (w - 1 - first[nose, 0])) < 4.0
    assert abs(second[nose, 0] - first[nose, 0]) > 20.0


def test_api_recognises_its_own_result_fed_back(sample_rgb, sample_analysis) -> None:
    """In memory, as with files: a result passed back unchanged (a turn, then its inverse) is analysed
    with the landmarks the turn moved, not a re-detection; a changed picture is analysed afresh."""
    import cv2

    from icportrait_studio import api

    original = api.LightRig(keep_original=1.0)
    there = api.relight(sample_rgb, original, view=api.ViewPose(25))
    assert there.landmarks is not None and there.info["landmarks_carried"] is False
    back = api.relight(there.image, original, view=api.ViewPose(-25))
    assert back.info["landmarks_carried"] is True
    changed = there.image.copy()
    changed[::2, ::2] *= np.float32(0.999)  # a repainted picture (every 4th pixel included)
    fresh = api.relight(changed, original, view=api.ViewPose(-25))
    assert fresh.info["landmarks_carried"] is False

    face = cv2.resize(sample_analysis.face_mask.astype(np.uint8), sample_rgb.shape[1::-1],
                      interpolation=cv2.INTER_NEAREST).astype(bool)

    def err(img: np.ndarray) -> float:
        return float(np.abs(img - sample_rgb)[face].mean())

    assert err(back.image) < 0.75 * err(fresh.image)
