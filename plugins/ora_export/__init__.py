"""Bundled plugin: OpenRaster export and read-back."""
