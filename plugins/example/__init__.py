"""Example IC-Portrait Studio plugin (see plugins/README.md). Nothing runs at import time."""
