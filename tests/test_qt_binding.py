"""Guard for the pinned Qt binding: PySide6 6.12.0 on CPython 3.11 over-releases None and aborts.

Every void Qt call dropped a reference to None it never took; after a few thousand calls the
interpreter died ("none_dealloc"). The constraint pins a release without the bug; this test fails
if an upgrade brings it back.
"""

from __future__ import annotations

import os
import subprocess
import sys

CODE = """
import sys
from PySide6.QtWidgets import QApplication, QWidget
app = QApplication([])
w = QWidget()
before = sys.getrefcount(None)
for _ in range(50000):
    w.setVisible(False)
print(sys.getrefcount(None) - before)
"""


def test_void_qt_calls_keep_none_alive() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-500:]
    assert abs(int(out.stdout.strip())) < 100
