"""One edit applied to many photos (``pipeline.batch``): output names that never replace an input or
each other, and a per-photo relight that reports failures instead of raising."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.errors import CancelledError
from icportrait_studio.imaging.io import load_image
from icportrait_studio.pipeline.batch import BatchItem, existing_targets, keep_both, plan_batch, relight_item
from icportrait_studio.pipeline.progress import CancelToken, Progress
from icportrait_studio.pipeline.registry import get_backend

RIG = LightRig(lights=(Light(azimuth=60, elevation=10),))


def test_plan_names_each_result_after_its_photo(tmp_path: Path) -> None:
    items = plan_batch([tmp_path / "a" / "IMG_1.jpg", tmp_path / "b" / "IMG_2.tif"], tmp_path / "out",
                       ext=".png", suffix="_relit")
    assert [it.target.name for it in items] == ["IMG_1_relit.png", "IMG_2_relit.png"]
    assert all(it.target.parent == tmp_path / "out" for it in items)
    assert items[0].source == tmp_path / "a" / "IMG_1.jpg"


def test_plan_never_puts_two_results_on_one_name(tmp_path: Path) -> None:
    items = plan_batch([tmp_path / "day1" / "x.jpg", tmp_path / "day2" / "x.jpg", tmp_path / "x.png"],
                       tmp_path / "out", ext=".jpg")
    names = [it.target.name for it in items]
    assert names == ["x.jpg", "x (2).jpg", "x (3).jpg"]


def test_plan_never_takes_a_photos_own_path(tmp_path: Path) -> None:
    photo = tmp_path / "portrait.png"
    photo.write_bytes(b"x")
    items = plan_batch([photo], tmp_path, ext=".png", suffix="")  # into the photo's folder, same type
    assert items[0].target != photo and items[0].target.name == "portrait (2).png"


def test_existing_results_are_found_and_kept_beside(tmp_path: Path) -> None:
    (tmp_path / "a_relit.png").write_bytes(b"old")
    (tmp_path / "a_relit (2).png").write_bytes(b"older")
    items = plan_batch([tmp_path / "src" / "a.jpg", tmp_path / "src" / "b.jpg"], tmp_path, suffix="_relit")
    assert existing_targets(items) == [tmp_path / "a_relit.png"]
    kept = keep_both(items)
    assert [it.target.name for it in kept] == ["a_relit (3).png", "b_relit.png"]
    assert existing_targets(kept) == []


def test_relight_item_writes_the_result(tmp_path: Path, sample_path: Path) -> None:
    item = BatchItem(sample_path, tmp_path / "out.png")
    done = relight_item(item, RIG)
    assert done.ok and done.error is None and done.seconds > 0
    out = load_image(item.target)
    src = load_image(sample_path)
    assert out.rgb.shape == src.rgb.shape and np.abs(out.rgb - src.rgb).mean() > 0.01  # relit, not copied
    assert done.info["analysis"]["faces_found"] == 1


def test_relight_item_reports_bad_input_and_writes_nothing(tmp_path: Path, sample_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(sample_path.read_bytes()[:3000])
    item = BatchItem(broken, tmp_path / "out" / "broken.png")
    (tmp_path / "out").mkdir()
    done = relight_item(item, RIG)
    assert not done.ok and "damaged" in (done.error or "") and done.traceback is None
    assert list((tmp_path / "out").iterdir()) == []


def test_relight_item_reports_an_unwritable_target(tmp_path: Path, sample_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_bytes(b"a file where the output folder should be")
    done = relight_item(BatchItem(sample_path, blocker / "out.png"), RIG)
    assert not done.ok and str(blocker) in (done.error or "")


def test_a_one_shot_photo_leaves_no_analysis_behind(tmp_path: Path, sample_path: Path) -> None:
    photo = tmp_path / "one_shot.png"
    shutil.copy(sample_path, photo)
    backend = get_backend("physical")
    before = set(backend._analyses)  # type: ignore[attr-defined]
    assert relight_item(BatchItem(photo, tmp_path / "r.png"), RIG, keep_analysis=False).ok
    assert set(backend._analyses) <= before  # type: ignore[attr-defined]
    assert relight_item(BatchItem(photo, tmp_path / "r2.png"), RIG).ok  # the default keeps it (the CLI's chain)
    assert any("one_shot.png" in k for k in backend._analyses)  # type: ignore[attr-defined]


@pytest.mark.parametrize("bits", [8, 16])
def test_bit_depth_reaches_the_file(tmp_path: Path, sample_path: Path, bits: int) -> None:
    done = relight_item(BatchItem(sample_path, tmp_path / "o.png"), RIG, bit_depth=bits, keep_analysis=False)
    assert done.ok and load_image(tmp_path / "o.png").bit_depth == bits


def test_progress_runs_from_loading_to_saving(tmp_path: Path, sample_path: Path) -> None:
    heard: list[Progress] = []
    assert relight_item(BatchItem(sample_path, tmp_path / "p.png"), RIG, progress=heard.append,
                        keep_analysis=False).ok
    fractions = [p.fraction for p in heard]
    assert heard[0].stage == "loading" and heard[-1].stage == "saving" and fractions[-1] == pytest.approx(0.9)
    assert fractions == sorted(fractions) and any(0.1 < f < 0.9 for f in fractions)  # the backend's stages


def test_a_cancel_during_a_photo_stops_before_its_file(tmp_path: Path, sample_path: Path) -> None:
    token = CancelToken()

    def cancel_once_analysed(p: Progress) -> None:
        if p.fraction > 0.3:
            token.cancel()

    with pytest.raises(CancelledError):
        relight_item(BatchItem(sample_path, tmp_path / "c.png"), RIG, progress=cancel_once_analysed, cancel=token,
                     keep_analysis=False)
    assert not (tmp_path / "c.png").exists()


def test_the_head_turn_travels_with_the_rig(tmp_path: Path, sample_path: Path) -> None:
    from icportrait_studio.core.view import ViewPose

    straight = relight_item(BatchItem(sample_path, tmp_path / "s.png"), RIG, keep_analysis=False)
    turned = relight_item(BatchItem(sample_path, tmp_path / "t.png"), RIG, view=ViewPose(yaw=20), keep_analysis=False)
    assert straight.ok and turned.ok
    a, b = load_image(tmp_path / "s.png"), load_image(tmp_path / "t.png")
    # the face moved toward the image's right: its landmarks (carried in the PNG) lie further right
    assert a.landmarks is not None and b.landmarks is not None
    assert float(np.median(b.landmarks[:, 0] - a.landmarks[:, 0])) > 3
