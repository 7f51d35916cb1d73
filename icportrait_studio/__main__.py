"""``python -m icportrait_studio [IMAGE]`` opens the app (``make run`` does this on the sample)."""

from __future__ import annotations

import sys


def launch(image: str | None = None) -> int:
    try:
        from icportrait_studio.ui.app import run_app
    except ImportError:
        run_app = None
    if run_app is not None:
        return run_app(image)
    # Until the desktop app lands: relight the sample with a preset and write the result.
    from icportrait_studio.cli import main

    image = image or "resources/samples/astronaut.png"
    return main(["relight", image, "--preset", "rembrandt", "-o", "out/sample_rembrandt.png", "--report",
                 "out/sample_report.json"])


if __name__ == "__main__":
    sys.exit(launch(sys.argv[1] if len(sys.argv) > 1 else None))
