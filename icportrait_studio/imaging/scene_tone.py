"""Relighting in a photo's own linear light when its profile's tone curve is far from sRGB's.

The app holds a photo as its codes decoded with sRGB's curve (``encoding.py``): exact for sRGB and
Display P3, within a few codes in the deepest shadows for Adobe RGB (gamma 2.2), and every file is
written back with the codes it came with. But a ProPhoto RGB photo (gamma 1.8: what Lightroom hands to
an external editor) decoded that way is light raised to the power 2.2 / 1.8: a light that halves the
light on the shadow side took its codes to 0.73 instead of 0.68, every shadow a sixth too weak. So the
relighting backends take such a photo's values into the profile's own linear light at their boundary
(``to_scene_linear``) and their result back out (``from_scene_linear``); the document, the screen, the
files and the exports keep the sRGB-decoded convention, so none of them changes.
"""

from __future__ import annotations

import functools

import numpy as np

from icportrait_studio.imaging.color import linear_to_srgb, lookup_unit, srgb_to_linear
from icportrait_studio.imaging.icc_profile import pure_gamma

__all__ = ["SRGB_LIKE", "from_scene_linear", "scene_gamma", "to_scene_linear"]

SRGB_LIKE = 0.15  # a profile gamma this close to 2.2 (Adobe RGB's 2.199) is left to sRGB's curve


def scene_gamma(icc: bytes | None, encoding: str = "srgb") -> float | None:
    """The exponent to relight in, for a photo decoded with ``encoding`` that carries ``icc``; None when
    sRGB's curve is right (or near enough: Adobe RGB) or the photo was already decoded as linear."""
    if encoding != "srgb" or not icc:
        return None
    try:
        g = pure_gamma(icc)
    except Exception:  # a damaged profile reads as "nothing to say"
        return None
    if g is None or abs(g - 2.2) <= SRGB_LIKE or abs(g - 1.0) < 0.02 or not 0.3 < g < 5.0:
        return None
    return g


def to_scene_linear(rgb: np.ndarray, gamma: float) -> np.ndarray:
    """Values decoded with sRGB's curve -> the light the profile's curve says they stand for (float32)."""
    return lookup_unit(rgb, _tables(round(gamma, 4))[0])


def from_scene_linear(light: np.ndarray, gamma: float) -> np.ndarray:
    """The inverse: relit light -> the values the app holds (codes through sRGB's curve), clipped to
    [0, 1] as every written or shown value is."""
    return lookup_unit(light, _tables(round(gamma, 4))[1])


_LEVELS = 65536  # as the 16-bit encode (color.encode_from_linear) quantises: exact for 8-bit codes


@functools.lru_cache(maxsize=4)
def _tables(gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """(sRGB-decoded -> profile-linear, profile-linear -> sRGB-decoded) at _LEVELS steps of the input."""
    x = np.linspace(0.0, 1.0, _LEVELS)
    to_scene = np.clip(linear_to_srgb(x).astype(np.float64), 0, 1) ** gamma
    from_scene = srgb_to_linear(x ** (1.0 / gamma))
    return to_scene.astype(np.float32), from_scene.astype(np.float32)
