"""The ``icportrait relight`` command end to end, the way the benchmarks and users call it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from icportrait_studio.cli import main

pytestmark = pytest.mark.slow


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "icportrait_studio.cli", *args], capture_output=True, text=True,
                          timeout=300)


def _clean_stderr(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.startswith("icportrait"))


def test_relight_sample_png_and_report(tmp_path: Path, sample_path: Path) -> None:
    out, report = tmp_path / "out.png", tmp_path / "report.json"
    r = run_cli("relight", str(sample_path), "-o", str(out), "--light", "azimuth=50,elevation=10",
                "--light", "azimuth=-40,elevation=0,intensity=0.3,color=3200K,size=0.5", "--report", str(report))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    img = np.asarray(Image.open(out))
    src = np.asarray(Image.open(sample_path).convert("RGB"))
    assert img.shape == src.shape
    assert np.abs(img.astype(int) - src).mean() > 3  # it changed
    data = json.loads(report.read_text())
    entry = data["images"][0]
    assert entry["status"] == "ok" and entry["faces_found"] == 1
    assert {"analysis", "relight"} <= set(entry["timings_ms"])
    assert len(data["rig"]["lights"]) == 2


def test_batch_with_a_bad_file(tmp_path: Path, sample_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good2 = tmp_path / "copy.jpg"
    Image.open(sample_path).convert("RGB").save(good2, quality=92)
    outdir = tmp_path / "out"
    r = run_cli("relight", str(sample_path), str(bad), str(good2), "-o", str(outdir), "--preset", "loop",
                "--report", str(tmp_path / "r.json"))
    assert r.returncode == 1
    assert "broken.png" in _clean_stderr(r.stderr) and "Traceback" not in r.stderr
    assert sorted(p.name for p in outdir.iterdir()) == ["astronaut.png", "copy.png"]
    statuses = [e["status"] for e in json.loads((tmp_path / "r.json").read_text())["images"]]
    assert statuses == ["ok", "failed", "ok"]


def test_formats_alpha_and_16bit(tmp_path: Path, sample_path: Path) -> None:
    rgba = np.asarray(Image.open(sample_path).convert("RGBA")).copy()
    rgba[:40, :40, 3] = 0
    src = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(src)
    assert main(["relight", str(src), "-o", str(tmp_path / "a.png"), "--light", "azimuth=30", "-q"]) == 0
    out = Image.open(tmp_path / "a.png")
    assert out.mode == "RGBA" and np.asarray(out)[:40, :40, 3].max() == 0
    assert main(["relight", str(sample_path), "-o", str(tmp_path / "b.tif"), "--light", "azimuth=30", "-q"]) == 0
    import tifffile

    t = tifffile.imread(tmp_path / "b.tif")
    assert t.dtype == np.uint16 and t.shape[:2] == (512, 512)
    assert main(["relight", str(sample_path), "-o", str(tmp_path / "c.jpg"), "--light", "azimuth=30", "-q"]) == 0
    assert Image.open(tmp_path / "c.jpg").format == "JPEG"


def test_exif_rotated_input_gives_an_upright_result(tmp_path: Path, sample_path: Path) -> None:
    upright = Image.open(sample_path).convert("RGB").crop((0, 0, 512, 400))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera held sideways writes
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    src = tmp_path / "rotated.jpg"
    stored.save(src, exif=exif, quality=95)
    assert main(["relight", str(src), "-o", str(tmp_path / "r.png"), "--light", "azimuth=30", "-q",
                 "--report", str(tmp_path / "r.json")]) == 0
    assert Image.open(tmp_path / "r.png").size == (512, 400)
    assert json.loads((tmp_path / "r.json").read_text())["images"][0]["faces_found"] == 1


def test_cmyk_grayscale_and_16bit_inputs(tmp_path: Path, sample_path: Path) -> None:
    base = Image.open(sample_path).convert("RGB")
    base.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    base.convert("L").save(tmp_path / "gray.png")
    arr16 = (np.asarray(base).astype(np.uint16) * 257)
    import tifffile

    tifffile.imwrite(tmp_path / "deep.tif", arr16)
    out = tmp_path / "out"
    r = run_cli("relight", str(tmp_path / "cmyk.jpg"), str(tmp_path / "gray.png"), str(tmp_path / "deep.tif"),
                "-o", str(out), "--light", "azimuth=-30,elevation=20")
    assert r.returncode == 0, r.stderr
    for name in ("cmyk", "gray", "deep"):
        assert Image.open(out / f"{name}.png").size == (512, 512)


@pytest.mark.parametrize(("content", "needle"), [(b"", "empty"), (b"hello, world\n", "not a recognised image")])
def test_unreadable_inputs_have_clear_messages(tmp_path: Path, content: bytes, needle: str) -> None:
    src = tmp_path / "x.png"
    src.write_bytes(content)
    r = run_cli("relight", str(src), "-o", str(tmp_path / "o.png"), "--light", "azimuth=10")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert needle in _clean_stderr(r.stderr).lower() or "x.png" in _clean_stderr(r.stderr)
    assert not (tmp_path / "o.png").exists()  # nothing half-written


def test_truncated_file_leaves_an_existing_output_untouched(tmp_path: Path, sample_path: Path) -> None:
    data = sample_path.read_bytes()
    src = tmp_path / "cut.png"
    src.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o.png"
    out.write_bytes(b"previous result")
    assert main(["relight", str(src), "-o", str(out), "--light", "azimuth=10", "-q"]) == 1
    assert out.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_huge_image_is_refused_cleanly(tmp_path: Path) -> None:
    src = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(src)
    r = run_cli("relight", str(src), "-o", str(tmp_path / "o.png"), "--light", "azimuth=10")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "limit" in _clean_stderr(r.stderr)


@pytest.mark.parametrize("size", [(1, 1), (5, 3)])
def test_a_tiny_image_is_refused_with_a_clear_message(tmp_path: Path, size: tuple[int, int], capsys) -> None:
    """A 1×1 image used to end in "internal error: ValueError: Shape of array too small to calculate a
    numerical gradient"."""
    src = tmp_path / "tiny.png"
    Image.new("RGB", size, (120, 110, 100)).save(src)
    assert main(["relight", str(src), "-o", str(tmp_path / "o.png"), "--light", "azimuth=10", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"only {size[0]}×{size[1]} pixels" in err and "internal error" not in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["--light", "azimuth=lots"], "must be a number"),
    (["--preset", "disco"], "unknown preset"),
    ([], "no light given"),
    (["--light", "elevation=120"], "elevation"),
])
def test_bad_arguments(tmp_path: Path, sample_path: Path, args: list[str], needle: str, capsys) -> None:
    assert main(["relight", str(sample_path), "-o", str(tmp_path / "o.png"), *args]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_presets_command_lists_them(capsys) -> None:
    assert main(["presets"]) == 0
    assert "rembrandt" in capsys.readouterr().out
