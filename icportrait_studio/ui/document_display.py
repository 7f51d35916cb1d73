"""What the canvas shows of a document: the 8-bit display pixels of each layer, kept in step with it.

Split from ``canvas.py``: the canvas paints layers; this decides which display pixels it paints and
prepares them on the I/O worker.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from icportrait_studio.ui.canvas import Canvas, DisplayLayer


class DocumentDisplay:
    """Keeps the canvas showing a document's layer stack.

    Holds the 8-bit display pixels of each layer (made on the I/O worker, never on the GUI thread) and
    reuses a layer's ``DisplayLayer`` while its pixels stay the same object, so its cached zoom levels
    survive repaints. The first relit preview covers the photo, so the photo's own display pixels
    (110 ms for 12 MP) are prepared only once that preview is up (``defer_base``): they would compete
    with the face analysis for the CPU exactly when the user waits for the first result.
    """

    def __init__(self, canvas: Canvas, submit: Callable[..., object]) -> None:
        self.canvas = canvas
        self._submit = submit  # JobsBridge.submit of the I/O worker
        self.doc: object | None = None
        self.defer_base = False
        self._arrays: dict[int, tuple[object, object, np.ndarray]] = {}
        self._layers: dict[int, DisplayLayer] = {}
        self._pending: set[int] = set()
        self._owned: set[int] = set()  # ids of display arrays this object made and may change in place

    def reset(self, doc: object) -> None:
        self.doc = doc
        self._arrays.clear()
        self._layers.clear()
        self._pending.clear()
        self._owned.clear()
        self.defer_base = doc.relit_layer.pixels is None  # type: ignore[attr-defined]

    def set_pixels(self, uid: int, pixels: object, display: np.ndarray, mask: object = None) -> None:
        """``display`` shows ``pixels`` under ``mask`` (the layer's current arrays, compared by identity)."""
        self._arrays[uid] = (pixels, mask, display)

    def release_base(self) -> None:
        if self.defer_base:
            self.defer_base = False
            self.refresh()

    def refresh(self) -> None:
        if self.doc is None:
            return
        shown = []
        for layer in self.doc.layers:  # type: ignore[attr-defined]
            arr = self._display_for(layer)
            if arr is None:
                continue
            dl = self._layers.get(layer.uid)
            if dl is None or dl.array is not arr:
                has_alpha = layer.mask is not None or (layer.kind in ("base", "relit")
                                                        and self.doc.alpha is not None)  # type: ignore[attr-defined]
                dl = DisplayLayer(layer.uid, layer.kind, arr, has_alpha)
                self._layers[layer.uid] = dl
            dl.visible, dl.opacity, dl.request_id = layer.visible, layer.opacity, layer.request_id
            shown.append(dl)
        self.canvas.set_layers(shown)

    def patch_mask(self, uid: int, mask: np.ndarray, box: tuple[int, int, int, int]) -> bool:
        """Show ``mask`` (the layer's mask, changed only inside ``box``) by re-encoding just that box.

        A brush stroke on a 12 MP layer would otherwise re-encode the whole layer (~100 ms) per update.
        The first patch copies the display array (render results may share theirs with the render
        cache); later ones write in place. False when the display cannot be patched (no display yet,
        or a preview-size layer): the caller then takes the full path.
        """
        from icportrait_studio.ui.work import encode_display

        doc = self.doc
        layer = doc.layer_by_uid(uid) if doc is not None else None  # type: ignore[attr-defined]
        dl, entry = self._layers.get(uid), self._arrays.get(uid)
        if layer is None or dl is None or entry is None or layer.pixels is None or entry[0] is not layer.pixels:
            return False
        h, w = mask.shape[:2]
        alpha = doc.alpha if layer.kind in ("base", "relit") else None  # type: ignore[attr-defined]
        arr = dl.array
        if (sys.byteorder != "little" or arr.ndim != 3 or arr.shape[2] != 4 or arr.shape[:2] != (h, w)
                or layer.pixels.shape[:2] != (h, w) or (alpha is not None and alpha.shape[:2] != (h, w))):
            return False
        if id(arr) not in self._owned:
            arr = arr.copy()
            new = DisplayLayer(uid, dl.kind, arr, True)
            new.visible, new.opacity, new.request_id = dl.visible, dl.opacity, dl.request_id
            self._layers[uid], dl = new, new
            self._owned.add(id(arr))
        x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
        if x1 > x0 and y1 > y0:
            sub_alpha = None if alpha is None else alpha[y0:y1, x0:x1]
            arr[y0:y1, x0:x1] = encode_display(layer.pixels[y0:y1, x0:x1], sub_alpha, mask[y0:y1, x0:x1])
            dl.patch_mips((x0, y0, x1, y1))
        self._arrays[uid] = (layer.pixels, mask, arr)
        self.refresh()
        return True

    def _display_for(self, layer: object) -> np.ndarray | None:
        from icportrait_studio.ui.work import display_work

        uid, pixels, mask = layer.uid, layer.pixels, layer.mask  # type: ignore[attr-defined]
        entry = self._arrays.get(uid)
        if entry is not None and entry[0] is pixels and entry[1] is mask:
            return entry[2]
        stale = entry[2] if entry is not None and entry[0] is pixels else None  # only the mask changed
        if pixels is None or uid in self._pending or (layer.kind == "base" and self.defer_base):  # type: ignore[attr-defined]
            return stale
        self._pending.add(uid)
        doc = self.doc
        alpha = doc.alpha if layer.kind in ("base", "relit") else None  # type: ignore[attr-defined]

        def done(arr: object) -> None:
            self._pending.discard(uid)
            if self.doc is doc:
                self._arrays[uid] = (pixels, mask, arr)  # type: ignore[assignment]
                self.refresh()

        self._submit(display_work(pixels, alpha, mask), label=f"Display '{layer.name}'",  # type: ignore[attr-defined]
                     priority=5, on_done=done, on_error=lambda _m: self._pending.discard(uid))
        return stale
