"""The ``diffusion`` backend: availability, registry, and a real job (physical render -> tiny model) with cancel."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.core.request import EditRequest
from icportrait_studio.jobs import JobManager, JobState
from icportrait_studio.model.backend import DiffusionBackend, DiffusionSettings, transfer_refinement, working_size
from icportrait_studio.pipeline.base import SourceImage
from icportrait_studio.pipeline.progress import Progress

RIG = LightRig(lights=(Light(azimuth=45, elevation=15), Light(azimuth=-120, elevation=10, intensity=0.6)))


def test_importing_the_model_package_stays_torch_free() -> None:
    code = (
        "import sys\n"
        "import icportrait_studio.model as m, icportrait_studio.commands.train, icportrait_studio.commands.model\n"
        "from icportrait_studio.pipeline.registry import backend_names\n"
        "assert 'diffusion' in backend_names()\n"
        "ok, why = m.DiffusionBackend(m.DiffusionSettings()).available()\n"
        "assert not ok and 'model folder' in why, why\n"
        "print(m.validate_model_folder('/nonexistent').ok)\n"
        "print(sorted(h for h in ('torch', 'diffusers', 'transformers', 'accelerate') if h in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "[]"]


def test_working_size_and_refinement_transfer() -> None:
    assert working_size(3000, 2000, 1024, 64) == (1024, 704)
    assert working_size(300, 200, 1024, 64) == (320, 192)  # never upscaled beyond rounding
    assert working_size(10, 10, 512, 64) == (64, 64)
    rng = np.random.default_rng(0)
    full = rng.random((200, 100, 3), dtype=np.float32) * 0.8 + 0.1
    import cv2

    work = cv2.resize(full, (50, 100), interpolation=cv2.INTER_AREA)
    same = transfer_refinement(full, work, work)
    np.testing.assert_allclose(same, full, rtol=1e-5, atol=1e-6)  # no refinement -> the render, detail intact
    brighter = transfer_refinement(full, work, work * 1.5)
    np.testing.assert_allclose(brighter, full * 1.5, rtol=0.05)  # the gain floor only damps darks
    direct = transfer_refinement(work, work, work * 0.5)  # same size: the model output as it is
    np.testing.assert_allclose(direct, work * 0.5, rtol=1e-6)


def test_registry_and_availability_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import icportrait_studio.model  # noqa: F401  (registers the backend)
    from icportrait_studio.pipeline.registry import backend_names, get_backend

    assert "diffusion" in backend_names()
    assert isinstance(get_backend("diffusion"), DiffusionBackend)
    monkeypatch.delenv("ICPORTRAIT_MODEL_DIR", raising=False)
    ok, why = DiffusionBackend(DiffusionSettings.from_env()).available()
    assert not ok and "no diffusion model folder" in why
    ok, why = DiffusionBackend(DiffusionSettings(model_dir=str(tmp_path / "missing"), allow_cpu=True)).available()
    assert not ok and "does not exist" in why
    monkeypatch.setenv("ICPORTRAIT_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("ICPORTRAIT_DIFFUSION_CPU", "1")
    settings = DiffusionSettings.from_env()
    assert settings.model_dir == str(tmp_path) and settings.allow_cpu
    ok, why = DiffusionBackend(settings).available()
    assert not ok and "incomplete" in why and "unet" in why


torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from icportrait_studio.model.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny", seed=2, layout="icportrait")


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> DiffusionBackend:
    settings = DiffusionSettings(model_dir=str(model_dir), allow_cpu=True, preview_max_side=32, full_max_side=32,
                                 preview_steps=4, full_steps=6, strength=1.0, preview_every=2, guidance_scale=2.0)
    return DiffusionBackend(settings)


@pytest.fixture(scope="module")
def source(sample_rgb: np.ndarray) -> SourceImage:
    return SourceImage("astronaut-diffusion", sample_rgb)


def test_unavailable_without_cuda_unless_cpu_is_forced(model_dir: Path) -> None:
    ok, why = DiffusionBackend(DiffusionSettings(model_dir=str(model_dir), allow_cpu=True)).available()
    assert ok, why
    ok, why = DiffusionBackend(DiffusionSettings(model_dir=str(model_dir), allow_cpu=False)).available()
    if torch.cuda.is_available():
        assert ok and "CUDA" in why
    else:
        assert not ok and "no CUDA GPU" in why


@pytest.mark.slow
def test_job_runs_end_to_end_with_step_progress_and_previews(backend, source) -> None:
    updates = []
    manager = JobManager(on_update=updates.append, name="test-diffusion", progress_interval=0.0)
    try:
        req = EditRequest(source.image_id, RIG, backend="diffusion", quality="full", seed=3)
        job = manager.submit(lambda progress, cancel: backend.run(req, source, progress, cancel), label="diffusion")
        done = manager.wait(job.id, timeout=180)
    finally:
        manager.shutdown(wait=True, timeout=10)
    assert done.state is JobState.DONE, done.error
    result = done.result
    assert result.image.shape == source.rgb.shape and result.image.dtype == np.float32
    assert np.isfinite(result.image).all()
    assert result.info["backend"] == "diffusion" and result.info["steps"] == 6
    assert result.info["working_size"] == [32, 32] and result.info["layout"] == "icportrait"
    assert result.shading is not None  # the physical render's shading, for overlays
    running = [u for u in updates if u.id == job.id and u.state is JobState.RUNNING]
    fractions = [u.progress for u in running]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    stages = [u.stage for u in running]
    assert [s for s in stages if s.startswith("refining")] == [f"refining {i}/6" for i in range(1, 7)]
    assert any(s.startswith("physical") for s in stages)
    previews = [u.preview for u in running if u.preview is not None and u.stage.startswith("refining")]
    assert previews and previews[0].shape == (16, 16, 3) and previews[0].dtype == np.float32
    # The same request renders the same image (seeded), through the cached pipeline.
    again = backend.run(req, source)
    np.testing.assert_allclose(again.image, result.image, atol=1e-6)


def test_job_can_be_cancelled_mid_run(backend, source) -> None:
    backend.configure(full_steps=40)
    refining = threading.Event()
    stages: list[str] = []

    def record(progress):
        def inner(p: Progress) -> None:
            stages.append(p.stage)
            if p.stage.startswith("refining"):
                refining.set()
            progress(p)
        return inner

    manager = JobManager(name="test-diffusion-cancel")
    try:
        req = EditRequest(source.image_id, RIG, backend="diffusion", quality="full", seed=1)
        job = manager.submit(lambda progress, cancel: backend.run(req, source, record(progress), cancel))
        assert refining.wait(120), "the job never reached the denoising loop"
        assert manager.cancel(job.id)
        done = manager.wait(job.id, timeout=60)
    finally:
        manager.shutdown(wait=True, timeout=10)
        backend.configure(full_steps=6)
    assert done.state is JobState.CANCELLED
    steps_run = [s for s in stages if s.startswith("refining")]
    assert 1 <= len(steps_run) < 40 and "done" not in stages
