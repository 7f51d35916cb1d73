"""The .icps project format and crash-recovery files, without Qt."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from icportrait_studio.core.document import Document, Layer, default_rig
from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.core.project import (
    HistoryEntry,
    LayerProps,
    ProjectHistory,
    autosave_path,
    discard_autosave,
    load_project,
    recovery_available,
    save_project,
)
from icportrait_studio.core.view import ViewPose
from icportrait_studio.errors import InputError
from icportrait_studio.imaging.io import load_image

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "astronaut.png"
# One step of a 16-bit sRGB code, in linear light, is at most ~2.6e-5 (near white); allow a little more.
TOL_16 = 6e-5


def _doc() -> Document:
    loaded = load_image(SAMPLE)
    doc = Document.from_loaded(loaded)
    rng = np.random.default_rng(1)
    relit = np.clip(doc.base * 1.3 + rng.normal(0, 0.01, doc.base.shape), 0, 1).astype(np.float32)
    doc.set_relit(relit, quality="full", request_id=7)
    mask = np.linspace(0, 1, 512 * 512, dtype=np.float32).reshape(512, 512)
    doc.add_layer(Layer("Sticker", "imported", rng.random((512, 512, 3), dtype=np.float32), opacity=0.4, mask=mask))
    doc.rig = LightRig(lights=(Light(azimuth=50, elevation=10, color=(1.0, 0.9, 0.8)),), ambient=0.1, name="mine")
    doc.view = ViewPose(12.0, -5.0, "head")
    doc.relit_layer.visible = False
    return doc


def _history(doc: Document) -> ProjectHistory:
    props = tuple(LayerProps(la.uid, la.name, la.kind, la.visible, la.opacity) for la in doc.layers)
    return ProjectHistory([
        HistoryEntry("Opened astronaut.png", default_rig()),
        HistoryEntry("Preset: rembrandt", LightRig(lights=(Light(-45, 40),)), ViewPose(), props[:2]),
        HistoryEntry("Move light 1", doc.rig, doc.view, props),
    ], index=2)


def test_round_trip_restores_everything(tmp_path: Path) -> None:
    doc = _doc()
    path = tmp_path / "portrait.icps"
    save_project(doc, path, _history(doc))
    loaded, history = load_project(path)

    assert loaded.rig == doc.rig and loaded.view == doc.view
    assert loaded.bit_depth == 8 and loaded.project_path == str(path)
    assert np.array_equal(loaded.base, doc.base)  # 8-bit source: stored losslessly as 8-bit
    assert [(la.name, la.kind, la.visible, la.opacity) for la in loaded.layers] == \
           [(la.name, la.kind, la.visible, la.opacity) for la in doc.layers]
    for a, b in zip(loaded.layers[1:], doc.layers[1:], strict=True):
        assert np.abs(a.pixels - np.clip(b.pixels, 0, 1)).max() < TOL_16
    assert np.abs(loaded.layers[2].mask - doc.layers[2].mask).max() <= 1 / 65535
    assert history.descriptions == ["Opened astronaut.png", "Preset: rembrandt", "Move light 1"]
    assert history.index == 2 and history[1].rig == LightRig(lights=(Light(-45, 40),))
    # uids are renumbered on load but stay consistent between the stack and the history
    assert [p.uid for p in history[2].layers] == [la.uid for la in loaded.layers]
    assert loaded.source_landmarks is None  # the sample carries none
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["format"] == "icps" and manifest["version"] == 1 and manifest["app_version"]
        layer_png = cv2.imdecode(np.frombuffer(zf.read(manifest["layers"][1]["file"]), np.uint8), -1)
        assert layer_png.dtype == np.uint16  # every layer is a 16-bit PNG


def test_sixteen_bit_source_stays_sixteen_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    base = rng.random((64, 80, 3), dtype=np.float32)
    doc = Document(base=base, bit_depth=16, alpha=rng.random((64, 80), dtype=np.float32), icc_profile=b"icc!")
    save_project(doc, tmp_path / "p.icps", [])
    loaded, history = load_project(tmp_path / "p.icps")
    assert loaded.bit_depth == 16 and loaded.icc_profile == b"icc!"
    assert np.abs(loaded.base - base).max() < TOL_16
    assert np.abs(loaded.alpha - doc.alpha).max() <= 1 / 65535
    assert len(history) == 0 and loaded.relit_layer.pixels is None
    with zipfile.ZipFile(tmp_path / "p.icps") as zf:
        assert cv2.imdecode(np.frombuffer(zf.read("original.png"), np.uint8), -1).dtype == np.uint16


def test_history_only_layers_are_kept(tmp_path: Path) -> None:
    doc = _doc()
    deleted = Layer("Deleted", "imported", np.full((512, 512, 3), 0.5, np.float32))
    props = (*(LayerProps(la.uid, la.name, la.kind) for la in doc.layers), LayerProps(deleted.uid, "Deleted",
                                                                                      "imported"))
    history = ProjectHistory([HistoryEntry("Opened", doc.rig, layers=props), HistoryEntry("Delete", doc.rig)], 1)
    save_project(doc, tmp_path / "h.icps", history, extra_layers=[deleted])
    _, loaded = load_project(tmp_path / "h.icps")
    uid = loaded[0].layers[-1].uid
    assert np.abs(loaded.layer_pixels[uid].pixels - 0.5).max() < TOL_16


def test_history_masks_round_trip_and_old_projects_keep_the_current_mask(tmp_path: Path) -> None:
    doc = _doc()
    layer = doc.layers[-1]
    old = np.tile(np.linspace(0, 1, 512, dtype=np.float32), (512, 1))
    step0 = tuple(LayerProps(la.uid, la.name, la.kind, mask=None, mask_recorded=True) for la in doc.layers)
    step1 = (*step0[:-1], LayerProps(layer.uid, layer.name, layer.kind, mask="m0", mask_recorded=True))
    entries = [HistoryEntry("Opened", doc.rig, layers=step0), HistoryEntry("Mask", doc.rig, layers=step1)]
    history = ProjectHistory(entries, 1, masks={"m0": old})
    path = tmp_path / "m.icps"
    save_project(doc, path, history)
    _, loaded = load_project(path)
    assert [lp.mask for lp in loaded[0].layers] == [None] * len(step0)
    assert all(lp.mask_recorded for e in loaded for lp in e.layers)
    assert loaded[1].layers[-1].mask == "m0" and np.abs(loaded.masks["m0"] - old).max() < TOL_16

    def drop_records(members: dict[str, bytes]) -> None:  # a project saved before masks were recorded
        manifest = json.loads(members["manifest.json"])
        for entry in manifest["history"]:
            for lp in entry["layers"]:
                lp.pop("mask", None)
        members["manifest.json"] = json.dumps(manifest).encode()

    _rewrite(path, drop_records)
    _, legacy = load_project(path)
    assert not any(lp.mask_recorded for e in legacy for lp in e.layers)

    def lose_mask(members: dict[str, bytes]) -> None:
        manifest = json.loads(members["manifest.json"])
        manifest["history_masks"] = {}
        members["manifest.json"] = json.dumps(manifest).encode()

    save_project(doc, path, history)
    _rewrite(path, lose_mask)
    with pytest.raises(InputError, match="history mask 'm0' is missing"):
        load_project(path)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04broken"])
def test_not_a_project(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.icps"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"not an IC-Portrait project|damaged"):
        load_project(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_project(tmp_path / "nope.icps")
    with pytest.raises(InputError, match="folder"):
        load_project(tmp_path)


def _rewrite(path: Path, edit) -> None:
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    edit(members)
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)


def test_newer_version_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "new.icps"
    save_project(_doc(), path, [])

    def bump(m: dict) -> None:
        manifest = json.loads(m["manifest.json"])
        manifest.update(version=2, app_version="9.0.0")
        m["manifest.json"] = json.dumps(manifest).encode()

    _rewrite(path, bump)
    with pytest.raises(InputError, match=r"newer.*9\.0\.0.*format 2.*Update"):
        load_project(path)


@pytest.mark.parametrize("damage", ["drop_layer", "garble_layer", "garble_manifest", "wrong_format", "truncate"])
def test_corrupt_projects(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "c.icps"
    save_project(_doc(), path, [])
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        def edit(m: dict) -> None:
            layer = next(n for n in m if n.startswith("layers/") and not n.endswith("mask.png"))
            if damage == "drop_layer":
                del m[layer]
            elif damage == "garble_layer":
                m[layer] = b"\x89PNG garbage"
            elif damage == "garble_manifest":
                m["manifest.json"] = b"{ nope"
            else:
                m["manifest.json"] = json.dumps({"format": "psd", "version": 1}).encode()

        _rewrite(path, edit)
    with pytest.raises(InputError) as info:
        load_project(path)
    assert str(path) in str(info.value)


def _manifest_fields(obj: object, at: tuple = ()) -> list[tuple]:
    """Every field path of a manifest (dict keys and list indices), depth first."""
    out = [at] if at else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _manifest_fields(v, (*at, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _manifest_fields(v, (*at, i))
    return out


def test_a_manifest_field_of_the_wrong_type_is_refused_or_read_sanely(tmp_path: Path) -> None:
    """A hand-edited or damaged manifest: every field replaced in turn by values of the wrong type gives
    an InputError naming the file, or a document whose fields the app can use (never an AttributeError)."""
    path = tmp_path / "p.icps"
    rng = np.random.default_rng(3)
    doc = Document(base=rng.random((12, 16, 3), dtype=np.float32), rig=LightRig(lights=(Light(azimuth=50),)))
    doc.set_relit(rng.random((12, 16, 3), dtype=np.float32), quality="full", request_id=1)
    doc.add_layer(Layer("Sticker", "imported", rng.random((12, 16, 3), dtype=np.float32), opacity=0.4,
                        mask=rng.random((12, 16), dtype=np.float32)))
    save_project(doc, path, [])
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members["manifest.json"])
    fields = [f for f in _manifest_fields(manifest) if f[0] not in ("saved", "app_version")]
    assert len(fields) > 40
    opened = refused = 0
    for field in fields:
        for value in (None, 7, "x", [1], {"a": 1}, True):
            changed = json.loads(members["manifest.json"])
            node = changed
            for key in field[:-1]:
                node = node[key]
            node[field[-1]] = value
            with zipfile.ZipFile(path, "w") as zf:
                for name, data in members.items():
                    zf.writestr(name, json.dumps(changed) if name == "manifest.json" else data)
            try:
                doc, _history = load_project(path)
            except InputError as exc:
                assert str(path) in str(exc)
                refused += 1
                continue
            opened += 1
            assert doc.path is None or isinstance(doc.path, str)
            assert isinstance(doc.analysis_info, dict) and all(isinstance(w, str) for w in doc.warnings)
            assert all(isinstance(layer.name, str) and 0.0 <= layer.opacity <= 1.0 for layer in doc.layers)
    assert opened and refused  # both outcomes occur: optional fields fall back, essential ones refuse


def test_failed_save_leaves_existing_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.icps"
    doc = _doc()
    save_project(doc, path, [])
    before = path.read_bytes()
    import icportrait_studio.core.project as project

    monkeypatch.setattr(project.json, "dumps", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        save_project(doc, path, [])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.icps"]  # no temp file left behind


def test_autosave_location_and_recovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICPORTRAIT_CONFIG_DIR", str(tmp_path / "cfg"))
    assert autosave_path() == tmp_path / "cfg" / "recovery" / "autosave.icps"
    assert recovery_available() is None
    save_project(_doc(), autosave_path(), [])
    info = recovery_available()
    assert info is not None and info.title == "astronaut.png"
    discard_autosave()
    assert recovery_available() is None


def test_document_flatten_and_snapshots() -> None:
    base = np.full((4, 6, 3), 0.2, np.float32)
    doc = Document(base=base)
    doc.set_relit(np.full((2, 3, 3), 0.6, np.float32), quality="preview")  # a preview: scaled up
    doc.relit_layer.opacity = 0.5
    assert np.allclose(doc.flatten(), 0.4)
    state = doc.snapshot()
    doc.relit_layer.visible = False
    doc.set_rig(LightRig())
    assert np.allclose(doc.flatten(), 0.2)
    doc.restore(state)
    assert doc.rig == default_rig() and doc.relit_layer.visible and np.allclose(doc.flatten(), 0.4)
    assert doc.remove_layer(doc.layers[0].uid) is None  # the photo itself cannot be deleted


def test_a_linear_photo_stays_linear_through_a_project(tmp_path: Path) -> None:
    doc = _doc()
    doc.encoding = "linear"
    save_project(doc, tmp_path / "lin.icps")
    loaded, _ = load_project(tmp_path / "lin.icps")
    assert loaded.encoding == "linear"
    doc.encoding = "srgb"
    save_project(doc, tmp_path / "srgb.icps")
    assert load_project(tmp_path / "srgb.icps")[0].encoding == "srgb"


def test_carried_landmarks_stay_with_the_project(tmp_path: Path) -> None:
    """A photo whose file carried its face landmarks is analysed with them; so is its project later."""
    doc = _doc()
    rng = np.random.default_rng(3)
    doc.source_landmarks = (rng.random((478, 3)) * [512, 512, 40]).astype(np.float32)
    path = tmp_path / "carried.icps"
    save_project(doc, path, _history(doc))
    loaded, _ = load_project(path)
    assert loaded.source_landmarks is not None and np.array_equal(loaded.source_landmarks, doc.source_landmarks)
    doc.source_landmarks = np.full((478, 3), 1e6, np.float32)  # nonsense (off the picture) is dropped
    save_project(doc, path, _history(doc))
    assert load_project(path)[0].source_landmarks is None


def test_autosave_reuses_unchanged_layers_but_never_saves_stale_pixels(tmp_path: Path) -> None:
    """Saving again encodes only what changed (autosave of a 12 MP project: 4.5 s → 0.6 s); the cache is
    keyed by the pixels themselves, so a layer painted in place is encoded again."""
    from icportrait_studio.core.png_cache import PNG_CACHE

    doc = _doc()
    path = tmp_path / "auto.icps"
    save_project(doc, path, _history(doc))
    first = path.read_bytes()
    misses = PNG_CACHE.misses
    save_project(doc, path, _history(doc))
    assert PNG_CACHE.misses == misses  # nothing encoded twice
    with zipfile.ZipFile(io.BytesIO(first)) as a, zipfile.ZipFile(path) as b:
        assert [n for n in a.namelist() if n != "manifest.json"] == [n for n in b.namelist() if n != "manifest.json"]
        assert all(a.read(n) == b.read(n) for n in a.namelist() if n != "manifest.json")
    relit = doc.relit_layer.pixels
    relit[:64, :64] = 0.0  # painted in place: same array object, new pixels
    save_project(doc, path, _history(doc))
    assert PNG_CACHE.misses == misses + 1  # just that layer
    loaded, _ = load_project(path)
    assert np.abs(loaded.relit_layer.pixels[:64, :64]).max() < TOL_16


def test_a_history_mask_that_is_the_current_mask_is_stored_and_decoded_once(tmp_path: Path) -> None:
    doc = _doc()
    layer = doc.layers[-1]  # carries a mask
    props = tuple(LayerProps(la.uid, la.name, la.kind, mask="m1" if la is layer else None, mask_recorded=True)
                  for la in doc.layers)
    history = ProjectHistory([HistoryEntry("Mask", doc.rig, layers=props)], 0, masks={"m1": layer.mask})
    path = tmp_path / "shared.icps"
    save_project(doc, path, history)
    with zipfile.ZipFile(path) as zf:
        assert not [n for n in zf.namelist() if n.startswith("history/masks/")]  # points at the layer's file
    loaded, hist = load_project(path)
    assert hist.masks["m1"] is loaded.layers[-1].mask  # one array: decoded once, shared as when saved
