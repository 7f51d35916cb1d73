"""The identity guard: dlib face embeddings, loaded lazily and once, and the distance the backend reports."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from icportrait_studio.identity import (
    IDENTITY_WARN,
    embedding_distance,
    face_embedding,
    identity_available,
    identity_distance,
)
from icportrait_studio.identity.embedding import models_dir

YALE = Path(__file__).resolve().parents[2] / "shared" / "data" / "yaleB-dev"

needs_model = pytest.mark.skipif(not identity_available()[0], reason=identity_available()[1])


def test_models_are_found_without_importing_the_package() -> None:
    d = models_dir()
    assert d is not None and (d / "dlib_face_recognition_resnet_model_v1.dat").exists()
    assert "face_recognition_models" not in sys.modules  # its pkg_resources import is never run
    assert IDENTITY_WARN == 0.5


@needs_model
def test_same_face_relit_is_close(sample_rgb, sample_analysis) -> None:
    brighter = np.clip(sample_rgb * np.array([1.25, 1.15, 1.0], np.float32), 0, 1)
    graded = np.clip(brighter ** 1.1, 0, 1)
    d = identity_distance(sample_rgb, graded, landmarks_reference=sample_analysis.landmarks,
                          landmarks_result=sample_analysis.landmarks)
    assert d is not None and d < 0.2
    # the detector path (no landmarks) finds the same face
    assert embedding_distance(face_embedding(sample_rgb), face_embedding(sample_rgb, sample_analysis.landmarks)) < 0.15


@needs_model
def test_different_people_are_far() -> None:
    from icportrait_studio.imaging.io import load_image

    paths = [YALE / f"yaleB0{i}" / f"yaleB0{i}_P00A+000E+00.pgm" for i in (1, 2)]
    if not all(p.exists() for p in paths):
        pytest.skip("the Yale dev faces are not here")
    a, b = (load_image(p).rgb for p in paths)
    d = identity_distance(a, b)
    assert d is not None and d > 0.6


@needs_model
def test_no_face_gives_none() -> None:
    flat = np.full((120, 160, 3), 0.4, np.float32)
    assert face_embedding(flat) is None
    assert identity_distance(flat, flat) is None


@needs_model
def test_models_load_once_and_embeddings_are_thread_safe(sample_rgb, sample_analysis) -> None:
    from icportrait_studio.identity import embedding

    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(face_embedding(sample_rgb, sample_analysis.landmarks))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 3
    first = embedding._models
    assert first is not None
    assert all(np.allclose(r, results[0], atol=1e-5) for r in results)
    face_embedding(sample_rgb, sample_analysis.landmarks)
    assert embedding._models is first


@needs_model
def test_backend_reports_identity_distance_for_full_quality_only(sample_rgb) -> None:
    from icportrait_studio.core.lights import Light, LightRig
    from icportrait_studio.core.request import EditRequest
    from icportrait_studio.core.view import ViewPose
    from icportrait_studio.pipeline.base import SourceImage
    from icportrait_studio.pipeline.physical import PhysicalBackend

    be = PhysicalBackend()
    src = SourceImage("id", sample_rgb)
    rig = LightRig(lights=(Light(azimuth=30, elevation=20),), keep_original=0.3)
    full = be.run(EditRequest("id", rig), src)
    assert 0.0 <= full.info["identity_distance"] < IDENTITY_WARN
    assert "identity" in full.info["timings_ms"]
    turned = be.run(EditRequest("id", LightRig(keep_original=1.0), view=ViewPose(20, 0)), src)
    assert 0.0 < turned.info["identity_distance"] < 0.4
    preview = be.run(EditRequest("id", rig, quality="preview"), src)
    assert "identity_distance" not in preview.info


def test_hog_detector_is_built_only_when_no_landmarks_place_the_face() -> None:
    """Building dlib's HOG detector costs ~0.5 s of CPU at every start; a face placed by our landmarks
    (every render of an analysed photo) never needs it."""
    import subprocess

    code = (
        "import numpy as np\n"
        "from PIL import Image\n"
        "from icportrait_studio.geometry.analysis import analyze\n"
        "from icportrait_studio.identity import embedding as e\n"
        "rgb = (np.asarray(Image.open('resources/samples/astronaut.png').convert('RGB'), np.float32) / 255) ** 2.2\n"
        "v = e.face_embedding(rgb, analyze(rgb).landmarks)\n"
        "print(v is not None, e._models._detector is None)\n"
        "print(e.face_embedding(rgb) is not None, e._models._detector is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True", "False"]
