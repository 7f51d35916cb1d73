"""Krita plugin: Tools ▸ Scripts ▸ Relight with IC-Portrait… (install: see IC-Portrait's plugins/README.md)."""

from .extension import register

register()
