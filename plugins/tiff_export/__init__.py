"""Bundled plugin: flattened 16-bit TIFF export."""
