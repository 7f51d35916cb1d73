"""Face landmarks carried inside the images we write, so the next edit of that file reuses them.

A result of a view change is a synthesised face: detecting landmarks on it afresh reads a +30° turn as
only +15–22° (the face mesh's own view of a re-posed face), and turning it back then goes astray. The
engine knows exactly where every landmark went, so it writes them into the file (a zTXt chunk, a few
kB) with a digest of the pixel samples. When that file is opened again and its samples still match,
the landmarks are used instead of a new detection; an edited file (any pixel changed) or a file from
elsewhere is analysed as usual. PNG carries them in a zTXt chunk, TIFF in a private tag, JPEG in a
comment and WebP in an XMP packet, the last two with a digest of the samples a decoder reads back (both
are lossy; even lossless WebP may rewrite the colour under fully transparent pixels).
"""

from __future__ import annotations

import base64
import html
import json
import re
from xml.sax.saxutils import quoteattr

import numpy as np

from icportrait_studio.core.png_cache import digest

KEYWORD = "icportrait:landmarks"
VERSION = 1
XMP_NAMESPACE = "https://icportrait.studio/ns/1.0/"
_XMP_RECORD = re.compile(r"icportrait:landmarks\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")


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
        if not isinstance(rec, dict) or rec.get("v") != VERSION or rec.get("digest") != digest:
            return None
        shape = tuple(int(n) for n in rec["shape"])
        lm = np.frombuffer(base64.b64decode(rec["landmarks"]), dtype="<f4").reshape(shape)
    except (ValueError, KeyError, TypeError):
        return None
    if lm.ndim != 2 or lm.shape[1] != 3 or not np.isfinite(lm).all():
        return None
    return lm.astype(np.float32)


def xmp_packet(record: str) -> bytes:
    """A minimal XMP packet holding ``record`` as one property in our namespace (valid XMP, so editors
    that keep a file's metadata keep it and the ones that parse it do not choke)."""
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description rdf:about="" xmlns:icportrait="{XMP_NAMESPACE}" '
            f'icportrait:landmarks={quoteattr(record)}/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()


def record_from_xmp(xmp: bytes | str) -> str | None:
    """Our record from an XMP packet (None when it holds none)."""
    text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp)
    m = _XMP_RECORD.search(text)
    if m is None:
        return None
    return html.unescape(m.group(1) if m.group(1) is not None else m.group(2))
