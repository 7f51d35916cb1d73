"""Heavy libraries load only when used: the app starts without torch, diffusers or mediapipe."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "diffusers", "transformers", "mediapipe")


@pytest.mark.parametrize("modules", [
    ["icportrait_studio", "icportrait_studio.api", "icportrait_studio.cli", "icportrait_studio.pipeline.physical",
     "icportrait_studio.pipeline.registry", "icportrait_studio.jobs", "icportrait_studio.commands"],
    ["icportrait_studio.ui.app"],
])
def test_no_heavy_imports(modules: list[str]) -> None:
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as e:\n"
        "        if e.name != m: raise\n"
        "from icportrait_studio.cli import build_parser\n"
        "build_parser()\n"
        f"print(sorted(h for h in {HEAVY!r} if h in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_analysis_loads_mediapipe_without_matplotlib() -> None:
    """mediapipe's solutions import matplotlib.pyplot for drawing (0.5 s of every first analysis); we never
    draw, so it stays unloaded, and a later import of matplotlib still gets the real library."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from PIL import Image\n"
        "from icportrait_studio.geometry.analysis import analyze\n"
        "rgb = np.asarray(Image.open('resources/samples/astronaut.png').convert('RGB'), np.float32) / 255\n"
        "a = analyze(rgb ** 2.2)\n"
        "assert a.has_face and 'mediapipe' in sys.modules\n"
        "print('matplotlib' in sys.modules, 'matplotlib.pyplot' in sys.modules)\n"
        "import matplotlib.pyplot as plt\n"
        "from mediapipe.python.solutions import drawing_utils\n"
        "print(type(plt).__name__, callable(plt.figure), drawing_utils.plt.figure is plt.figure)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "module", "True", "True"]
