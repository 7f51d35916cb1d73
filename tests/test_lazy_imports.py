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
