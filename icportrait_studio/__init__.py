"""IC-Portrait Studio: 3D-aware portrait relighting and view change.

Importing the package is cheap: no Qt, no torch, no mediapipe until they are needed.
"""

__version__ = "0.1.0"
