"""Import mediapipe without the matplotlib it drags in (0.5 s of every first analysis).

``import mediapipe`` runs ``mediapipe.python.solutions.__init__``, which imports ``drawing_utils``, which
imports ``matplotlib.pyplot`` at module level only to draw landmarks in a notebook. We never draw, yet
every app start and every CLI run paid ~0.5 s for it (of ~0.75 s for all of mediapipe). While
mediapipe is first imported, ``matplotlib`` and ``matplotlib.pyplot`` are stand-ins that import the real
module on first use; they are taken out of ``sys.modules`` right after, so anyone importing matplotlib
later gets the real one, and ``drawing_utils``' own reference still works if it is ever used.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import types

_lock = threading.Lock()
_done = False


class _StandIn(types.ModuleType):
    """A module that becomes the real one (imported then) on its first attribute access."""

    def __getattr__(self, name: str):
        real = self.__dict__.get("_real_module")
        if real is None:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
            self.__dict__["_real_module"] = real
        return getattr(real, name)


def _quiet_environment() -> None:
    """mediapipe's and TFLite's native start-up logging off (set before their first import)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def import_mediapipe() -> None:
    """Import mediapipe once, quietly, without importing matplotlib (see the module's docstring)."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        _quiet_environment()
        stand_ins: dict[str, _StandIn] = {}
        if "matplotlib" not in sys.modules:
            mpl, plt = _StandIn("matplotlib"), _StandIn("matplotlib.pyplot")
            mpl.__dict__["pyplot"] = plt  # `import matplotlib.pyplot as plt` reads this attribute
            stand_ins = {"matplotlib": mpl, "matplotlib.pyplot": plt}
            sys.modules.update(stand_ins)
        try:
            import mediapipe
            import mediapipe.python.solutions  # noqa: F401
        finally:
            for name, module in stand_ins.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
        _done = True
