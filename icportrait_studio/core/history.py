"""Undo snapshots <-> the history saved in a project file (Qt-free, so it is testable on its own).

Undo works on whole-document snapshots (``DocState``); a project stores them as ``HistoryEntry``
records: layer properties by uid, masks by key into one shared table (snapshots share unchanged mask
arrays, so each distinct mask is written once), rendered layers without pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from icportrait_studio.core.document import DocState, Document, Layer, LayerState
from icportrait_studio.core.project import HistoryEntry, LayerProps, ProjectHistory

RENDERED_KINDS = ("relit", "view")


def strip_state(state: DocState) -> DocState:
    """A snapshot for the undo stack: rendered layers lose their pixels (the render cache has them)."""
    layers = tuple(replace(s, pixels=None, quality="full", request_id=0) if s.kind in RENDERED_KINDS else s
                   for s in state.layers)
    return replace(state, layers=layers)


def entry_from_state(description: str, state: DocState,
                     mask_key: Callable[[np.ndarray], str] | None = None) -> HistoryEntry:
    """One saved history step; with ``mask_key``, each layer's mask is recorded by the key it returns."""
    props = tuple(LayerProps(s.uid, s.name, s.kind, s.visible, s.opacity,
                             None if mask_key is None or s.mask is None else mask_key(s.mask), mask_key is not None)
                  for s in state.layers)
    return HistoryEntry(description, state.rig, state.view, props)


def history_for_save(base: tuple[str, DocState], commands: list[tuple[str, DocState]], index: int,
                     doc: Document) -> tuple[ProjectHistory, list[Layer]]:
    """The undo history as saved in a project, plus layers only the history still refers to."""
    masks: dict[str, np.ndarray] = {}
    keys: dict[int, str] = {}  # snapshots share unchanged masks: one key per distinct array

    def mask_key(mask: np.ndarray) -> str:
        if id(mask) not in keys:
            keys[id(mask)] = f"m{len(masks)}"
            masks[keys[id(mask)]] = mask
        return keys[id(mask)]

    entries = [entry_from_state(*base, mask_key)] + [entry_from_state(text, st, mask_key) for text, st in commands]
    current = {layer.uid for layer in doc.layers}
    extra: dict[int, Layer] = {}
    for _, st in [base, *commands]:
        for s in st.layers:
            if s.uid not in current and s.kind not in RENDERED_KINDS and s.pixels is not None:
                extra.setdefault(s.uid, Layer.from_state(s))
    return ProjectHistory(entries, index, masks=masks), list(extra.values())


def states_from_history(history: ProjectHistory, doc: Document) -> list[DocState]:
    """Turn saved history entries back into snapshots, finding each layer's pixels by uid."""
    current = {layer.uid: layer for layer in doc.layers}
    states = []
    for entry in history.entries:
        if entry.layers is None:
            layers = tuple(layer.state() for layer in doc.layers)
        else:
            found = []
            for p in entry.layers:
                src = current.get(p.uid) or history.layer_pixels.get(p.uid)
                pixels = src.pixels if src is not None else None
                if p.mask_recorded:
                    mask = history.masks.get(p.mask) if p.mask is not None else None
                else:  # a project from before masks were recorded: the layer's current mask
                    mask = src.mask if src is not None else None
                found.append(LayerState(p.uid, p.name, p.kind, p.visible, p.opacity, pixels, mask,  # type: ignore[arg-type]
                                        "full", 0))
            layers = tuple(found)
        states.append(strip_state(DocState(entry.rig, entry.view, doc.backend, layers)))
    return states
