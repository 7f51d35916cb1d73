"""One edit applied to many photos: where each result goes, and one photo's relight that never raises.

A shoot is dozens of frames under the same lights; a photographer who has placed lights on one of them
wants the same rig (and head turn) on the rest. The CLI's batch and the app's "Apply Edit to Photos…"
share this: ``plan_batch`` names the outputs (never an input, never two results on one name),
``relight_item`` relights one photo into its file and turns any failure into a message for a person,
so a bad frame is reported and the others go on.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from icportrait_studio.core.lights import LightRig
from icportrait_studio.core.view import ViewPose
from icportrait_studio.errors import CancelledError, ICPortraitError
from icportrait_studio.pipeline.progress import CancelToken, ProgressFn

__all__ = ["BatchItem", "ItemOutcome", "existing_targets", "keep_both", "plan_batch", "relight_item"]


@dataclass(frozen=True)
class BatchItem:
    """One photo and the file its result is written to."""

    source: Path
    target: Path


@dataclass
class ItemOutcome:
    """What became of one photo: ``error`` is None when its result was written."""

    item: BatchItem
    error: str | None = None
    info: dict = field(default_factory=dict)  # the relight's report (timings, encoding, warnings…)
    traceback: str | None = None  # only for an internal error: the details a bug report needs
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def warnings(self) -> list[str]:
        return list(self.info.get("warnings", []))


def _numbered(path: Path, taken: Callable[[Path], bool]) -> Path:
    """``path``, or "name (2).ext", "name (3).ext"…: the first that ``taken`` does not claim."""
    candidate, n = path, 1
    while taken(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
    return candidate


def plan_batch(inputs: Sequence[str | Path], folder: str | Path, *, ext: str = ".png",
               suffix: str = "") -> list[BatchItem]:
    """Each input's result as ``folder/<stem><suffix><ext>``. Two inputs with the same stem (from two
    folders) get "(2)", "(3)"… rather than one result replacing the other, and a result never takes an
    input's own path (an empty suffix into the photos' folder would replace the originals): that one is
    numbered too. Files already in ``folder`` are left to the caller (``existing_targets``)."""
    folder = Path(folder)
    sources = [Path(p) for p in inputs]
    protected = {p.resolve() for p in sources}
    taken: set[Path] = set()
    items = []
    for src in sources:
        target = _numbered(folder / f"{src.stem}{suffix}{ext}", lambda p: p in taken or p.resolve() in protected)
        taken.add(target)
        items.append(BatchItem(src, target))
    return items


def existing_targets(items: Sequence[BatchItem]) -> list[Path]:
    """The planned results whose files exist already (asked about before anything is replaced)."""
    return [it.target for it in items if it.target.exists()]


def keep_both(items: Sequence[BatchItem]) -> list[BatchItem]:
    """The plan with every result whose file exists renamed "name (2).ext" (the first free number)."""
    taken = {it.target for it in items}
    out = []
    for it in items:
        if it.target.exists():
            taken.discard(it.target)
            target = _numbered(it.target, lambda p: p in taken or p.exists())
            taken.add(target)
            it = BatchItem(it.source, target)
        out.append(it)
    return out


def relight_item(item: BatchItem, rig: LightRig, *, view: ViewPose | None = None, backend: str = "physical",
                 encoding: str = "auto", to_srgb: bool = False, bit_depth: int | None = None,
                 keep_analysis: bool = True, progress: ProgressFn | None = None,
                 cancel: CancelToken | None = None) -> ItemOutcome:
    """Relight ``item.source`` into ``item.target`` (atomically: a failure leaves no partial file). Bad
    input, a missing face model or a full disk come back as ``error``, never as an exception; only a
    cancel (``CancelledError``) passes through, for the caller to stop the batch. ``bit_depth``,
    ``keep_analysis``, ``progress`` and ``cancel`` as ``api.relight_file`` takes them."""
    from icportrait_studio.api import relight_file

    t0 = time.perf_counter()
    outcome = ItemOutcome(item)
    try:
        res = relight_file(item.source, item.target, rig, view=view, backend=backend, encoding=encoding,
                           to_srgb=to_srgb, bit_depth=bit_depth, keep_analysis=keep_analysis, progress=progress,
                           cancel=cancel)
        outcome.info = res.info
    except CancelledError:
        raise
    except ICPortraitError as exc:
        outcome.error = str(exc)
    except OSError as exc:  # the output folder vanished, the disk filled, permissions
        outcome.error = f"cannot write {item.target}: {exc.strerror or exc}"
    except Exception as exc:  # an engine bug must not stop the batch; keep the details for a report
        outcome.error = f"internal error: {type(exc).__name__}: {exc}"
        outcome.traceback = traceback.format_exc()
    outcome.seconds = time.perf_counter() - t0
    return outcome
