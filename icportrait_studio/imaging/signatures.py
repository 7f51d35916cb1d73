"""What a file is, from its first bytes: the signatures the decoders branch on, and the well-known
formats this app cannot read, named so a user is told which (not that the file looks damaged)."""

from __future__ import annotations

__all__ = ["PNG_SIGNATURE", "TIFF_SIGNATURES", "unsupported_kind"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders

# ISO base-media brands (bytes 8-12 of an ``ftyp`` box) of photo formats Pillow cannot decode
_BMFF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"heim": "HEIC", b"heis": "HEIC",
                b"mif1": "HEIF", b"msf1": "HEIF", b"crx ": "Canon CR3 raw"}


def unsupported_kind(head: bytes) -> str | None:
    """The name of a well-known format this app cannot read, from the file's first bytes (a phone's HEIC
    photo was "not a recognised image, or the file is damaged", which sends a user looking for damage)."""
    if head[4:8] == b"ftyp" and head[8:12] in _BMFF_BRANDS:
        return _BMFF_BRANDS[head[8:12]]
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "Fujifilm RAF raw"
    if head.startswith(b"%PDF"):
        return "PDF"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml")):
        return "SVG (vector)"
    return None
