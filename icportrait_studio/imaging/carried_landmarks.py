"""Face landmarks carried inside the images we write, so the next edit of that file reuses them.

A result of a view change is a synthesised face: detecting landmarks on it afresh reads a +30° turn as
only +15–22° (the face mesh's own view of a re-posed face), and turning it back then goes astray. The
engine knows exactly where every landmark went, so it writes them into the file (a zTXt chunk, a few
kB) with a digest of the pixel samples. When that file is opened again and its samples still match,
the landmarks are used instead of a new detection; an edited file (any pixel changed) or a file from
elsewhere is analysed as usual. PNG carries them in a zTXt chunk, TIFF in a private tag, JPEG in a
comment whose digest is of the samples a decoder reads back (JPEG is lossy); WebP carries none.
"""

from __future__ import annotations

import base64
import json

import numpy as np

from icportrait_studio.core.png_cache import digest

KEYWORD = "icportrait:landmarks"
VERSION = 1


def pixel_digest(color: np.ndarray, alpha: np.ndarray | None) -> str:
    """A digest of the encoded samples (as written and as decoded back: PNG and TIFF are lossless)."""
    return digest(color, alpha)


def encode_record(landmarks: np.ndarray, digest: str) -> str:
    lm = np.ascontiguousarray(landmarks, dtype="<f4")
    return json.dumps({"v": VERSION, "digest": digest, "shape": list(lm.shape),
                       "landmarks": base64.b64encode(lm.tobytes()).decode("ascii")})


def decode_record(text: str, digest: str) -> np.ndarray | None:
    """The landmarks of a record whose digest matches the decoded samples; None otherwise."""
    try:
        rec = json.loads(text)
        if rec.get("v") != VERSION or rec.get("digest") != digest:
            return None
        shape = tuple(int(n) for n in rec["shape"])
        lm = np.frombuffer(base64.b64decode(rec["landmarks"]), dtype="<f4").reshape(shape)
    except (ValueError, KeyError, TypeError):
        return None
    if lm.ndim != 2 or lm.shape[1] != 3 or not np.isfinite(lm).all():
        return None
    return lm.astype(np.float32)
