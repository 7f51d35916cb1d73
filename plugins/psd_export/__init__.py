"""Bundled plugin: layered PSD export and read-back (psd-tools)."""
