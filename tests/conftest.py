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
def sample_context(sample_rgb, sample_analysis):
    from icportrait_studio.lighting.relight import prepare

    return prepare(sample_rgb, sample_analysis)
