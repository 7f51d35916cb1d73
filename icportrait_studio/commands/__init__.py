"""Subcommands of ``icportrait`` beyond ``relight``, one module each.

Each module defines ``register(subparsers) -> None``; importing it must stay cheap (argparse set-up
only), the heavy imports happen inside the command's handler.
"""

from __future__ import annotations

import importlib
import pkgutil


def register_all(subparsers) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
