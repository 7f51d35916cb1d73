"""Shared fixtures: the bundled sample portrait and its (cached) analysis."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# tests never read or write the user's real settings, recent files or autosave
os.environ["ICPORTRAIT_CONFIG_DIR"] = tempfile.mkdtemp(prefix="icportrait-test-config-")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "samples" / "astronaut.png"


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def sample_rgb() -> np.ndarray:
    from icportrait_studio.imaging.io import load_image

    return load_image(SAMPLE).rgb


@pytest.fixture(scope="session")
def sample_analysis(sample_rgb):
    from icportrait_studio.geometry.analysis import analyze

    return analyze(sample_rgb)


@pytest.fixture(scope="session")
def sample_geometry(sample_rgb, sample_analysis):
    """The sample's warp geometry at the analysis' size, built as the backend builds it (collar split)."""
    from icportrait_studio.geometry.head_split import body_beside_head
    from icportrait_studio.geometry.view_setup import warp_geometry

    return warp_geometry(sample_analysis, body=body_beside_head(sample_rgb, sample_analysis))


@pytest.fixture(scope="session")
def sample_context(sample_rgb, sample_analysis):
    from icportrait_studio.lighting.relight import prepare

    return prepare(sample_rgb, sample_analysis)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core runner spinning OpenMP threads
    made their steps 10-30x slower; the model tests use one thread and restore the setting after."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def no_broken_job_handlers(request, caplog):
    """A job's completion handler that raises is logged and reported by the app, which keeps running (it
    must not stop other jobs' updates): that would hide the bug from a test, so such a record fails it."""
    yield
    if request.node.get_closest_marker("broken_handler"):
        return
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    broken = [r for r in records if r.name == "icportrait_studio.ui.jobs_bridge" and r.levelno >= 40]
    assert not broken, "a job handler raised:\n" + "\n".join(r.getMessage() + "\n" + (r.exc_text or "")
                                                              for r in broken)
