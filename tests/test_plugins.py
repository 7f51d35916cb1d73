"""Plugin discovery, lazy loading, guarded failures, the example plugin, editors and "Edit in…"."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from icportrait_studio.plugins.api import API_VERSION, ExportDocument, ExportLayer, PluginError
from icportrait_studio.plugins.choices import PluginChoices, load_choices
from icportrait_studio.plugins.manifest import ManifestError, api_compatible, parse_manifest
from icportrait_studio.plugins.registry import PluginRegistry, bundled_plugins_dir

BUNDLED = bundled_plugins_dir()


def _plugin(root: Path, dirname: str, manifest: str, files: dict[str, str] | None = None) -> Path:
    d = root / dirname
    d.mkdir(parents=True)
    (d / "plugin.toml").write_text(textwrap.dedent(manifest))
    for name, text in (files or {}).items():
        (d / name).write_text(textwrap.dedent(text))
    return d


def _doc(w: int = 8, h: int = 6) -> ExportDocument:
    rng = np.random.default_rng(1)
    return ExportDocument.from_layers([ExportLayer("Original", rng.random((h, w, 3), dtype=np.float32), kind="base")])


# --- manifests ------------------------------------------------------------------------------------------


def test_api_version_rules() -> None:
    assert api_compatible(API_VERSION)
    assert api_compatible("1") and api_compatible("1.0")
    assert not api_compatible("2.0") and not api_compatible("1.99") and not api_compatible("banana")


def test_manifest_validation_names_the_problem() -> None:
    with pytest.raises(ManifestError, match="entry"):
        parse_manifest({"name": "x", "version": "1", "api_version": "1.0",
                        "contributes": {"exporters": [{"id": "e", "extensions": [".e"]}]}})
    with pytest.raises(ManifestError, match="unknown contribution"):
        parse_manifest({"name": "x", "version": "1", "api_version": "1.0", "contributes": {"widgets": []}})


# --- discovery ----------------------------------------------------------------------------------------------


def test_bundled_plugins_are_listed_without_importing_them() -> None:
    reg = PluginRegistry([BUNDLED], entry_points=False)
    names = {p.name: p for p in reg.discover()}
    assert {"psd-export", "ora-export", "tiff-export", "external-editors", "example"} <= set(names)
    # the example ships off (its demo backend is not for every user's backend list); the rest are on
    assert names["example"].state == "off" and "Help → Plugins" in names["example"].message
    assert all(p.state == "available" for n, p in names.items() if n != "example")
    exts = {e for c in reg.contributions("exporters") for e in c.data["extensions"]}
    assert {".psd", ".ora", ".tif"} <= exts and ".layers.json" not in exts
    assert {c.id for c in reg.contributions("editor_bridges")} >= {"photoshop", "gimp", "krita", "affinity-photo"}
    assert reg.contributions("backends") == []
    # The UXP panel's manifest.json (not ours) is ignored, and nothing was imported to list all this.
    assert not any(p.location and p.location.name == "photoshop_uxp" for p in reg.plugins())
    assert all(p.module is None for p in reg.plugins())


def test_listing_never_imports_plugin_code(tmp_path: Path) -> None:
    _plugin(tmp_path, "noisy", """
        name = "noisy"
        version = "1"
        api_version = "1.0"
        [[contributes.exporters]]
        id = "n"
        extensions = [".noisy"]
        entry = "impl:Exporter"
        """, {"__init__.py": "raise RuntimeError('imported!')\n"})
    reg = PluginRegistry([tmp_path], entry_points=False)
    reg.discover()
    assert [c.id for c in reg.contributions("exporters")] == ["n"]
    assert reg.get("noisy").state == "available"


def test_api_mismatch_disables_with_a_message(tmp_path: Path) -> None:
    _plugin(tmp_path, "future", 'name = "future"\nversion = "1"\napi_version = "2.0"\n')
    _plugin(tmp_path, "broken", 'name = "broken"\nversion = \n')
    seen: list[str] = []
    reg = PluginRegistry([tmp_path], entry_points=False)
    reg.subscribe(lambda m: seen.append(m.text))
    reg.discover()
    info = reg.get("future")
    assert info is not None and info.state == "disabled" and "2.0" in info.message
    assert any("broken" in m.text and m.level == "error" for m in reg.messages)
    assert reg.contributions("exporters") == []
    with pytest.raises(PluginError, match="disabled"):
        reg.load("future")


def test_a_crashing_plugin_is_disabled_and_the_app_keeps_going(tmp_path: Path) -> None:
    from icportrait_studio.plugins.export import export_document, exporter_for

    _plugin(tmp_path, "crashy", """
        name = "crashy"
        version = "1"
        api_version = "1.0"
        [[contributes.exporters]]
        id = "crash"
        extensions = [".crash"]
        entry = "impl:Exporter"
        """, {"__init__.py": "", "impl.py": """
        class Exporter:
            def write(self, path, doc):
                raise ZeroDivisionError("oops")
        """})
    _plugin(tmp_path, "badimport", """
        name = "badimport"
        version = "1"
        api_version = "1.0"
        [[contributes.exporters]]
        id = "bad"
        extensions = [".bad"]
        entry = "impl:Exporter"
        """, {"__init__.py": "import no_such_module_anywhere\n"})
    reg = PluginRegistry([tmp_path, BUNDLED], entry_points=False)
    reg.discover()
    with pytest.raises(PluginError, match=r"crashy.*ZeroDivisionError"):
        export_document(tmp_path / "x.crash", _doc(), reg)
    with pytest.raises(PluginError, match=r"badimport.*failed to load"):
        export_document(tmp_path / "x.bad", _doc(), reg)
    assert reg.get("crashy").state == reg.get("badimport").state == "disabled"
    assert {m.plugin for m in reg.messages if m.level == "error"} == {"crashy", "badimport"}
    with pytest.raises(Exception, match="no exporter"):
        exporter_for(tmp_path / "x.crash", reg)  # its contributions are gone
    export_document(tmp_path / "ok.tif", _doc(), reg)  # other plugins still work
    assert (tmp_path / "ok.tif").stat().st_size > 0


def test_entry_point_plugins_are_found_without_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    pkg = tmp_path / "icp_ep_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import sys\nsys.modules[__name__].LOADED = True\n")
    (pkg / "impl.py").write_text("class Exporter:\n    def write(self, path, doc):\n        path.write_text('ep')\n")
    (pkg / "plugin.toml").write_text('name = "ep-plugin"\nversion = "1"\napi_version = "1.0"\n'
                                     '[[contributes.exporters]]\nid = "ep"\nextensions = [".ep"]\n'
                                     'entry = "impl:Exporter"\n')
    dist = tmp_path / "icp_ep_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: icp-ep-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[icportrait_studio.plugins]\nep = icp_ep_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    reg = PluginRegistry([], entry_points=True)
    reg.discover()
    info = reg.get("ep-plugin")
    assert info is not None and info.origin == "entry_point" and info.state == "available"
    assert [c.id for c in reg.contributions("exporters")] == ["ep"]
    assert "icp_ep_plugin" not in sys.modules
    from icportrait_studio.plugins.export import export_document

    export_document(tmp_path / "out.ep", _doc(), reg)
    assert (tmp_path / "out.ep").read_text() == "ep" and sys.modules["icp_ep_plugin"].LOADED
    monkeypatch.delitem(sys.modules, "icp_ep_plugin")
    monkeypatch.delitem(sys.modules, "icp_ep_plugin.impl")


def test_the_users_choices_turn_plugins_on_and_off(tmp_path: Path) -> None:
    path = tmp_path / "plugins.json"
    choices = load_choices(path)  # no file yet: every plugin as its manifest says
    assert not choices.on and not choices.off
    choices.set("example", True)
    choices.set("psd-export", False)
    choices.save()
    reg = PluginRegistry([BUNDLED], entry_points=False, choices=load_choices(path))
    names = {p.name: p for p in reg.discover()}
    assert names["example"].state == "available" and names["psd-export"].state == "off"
    assert "turned off" in names["psd-export"].message
    assert [c.id for c in reg.contributions("backends")] == ["example-gain"]
    exts = {e for c in reg.contributions("exporters") for e in c.data["extensions"]}
    assert ".layers.json" in exts and ".psd" not in exts
    # turning one back on moves it, never leaves it in both lists
    choices.set("psd-export", True)
    assert "psd-export" in choices.on and "psd-export" not in choices.off


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"on": "example", "off": [3]}', ""])
def test_a_damaged_choices_file_means_no_choices(tmp_path: Path, text: str) -> None:
    path = tmp_path / "plugins.json"
    path.write_text(text)
    choices = load_choices(path)
    assert not choices.on and not choices.off
    reg = PluginRegistry([BUNDLED], entry_points=False, choices=choices)
    assert {p.name: p.state for p in reg.discover()}["psd-export"] == "available"


def test_enabled_by_default_must_be_a_boolean() -> None:
    base = {"name": "x", "version": "1", "api_version": "1.0"}
    assert parse_manifest(base).enabled_by_default is True
    assert parse_manifest({**base, "enabled_by_default": False}).enabled_by_default is False
    with pytest.raises(ManifestError, match="enabled_by_default"):
        parse_manifest({**base, "enabled_by_default": "no"})


# --- the example plugin (the one plugins/README.md documents) ------------------------------------------------


def test_example_plugin_exporter_preset_and_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import icportrait_studio.core.presets as presets_mod
    import icportrait_studio.pipeline.registry as backends_mod
    from icportrait_studio.core.presets import load_preset
    from icportrait_studio.pipeline.registry import get_backend
    from icportrait_studio.plugins.export import export_document

    # activate() changes process-wide registries: give this test its own copies so others never see the example.
    monkeypatch.setattr(presets_mod, "_extra_dirs", list(presets_mod._extra_dirs))
    monkeypatch.setattr(backends_mod, "_factories", dict(backends_mod._factories))
    monkeypatch.setattr(backends_mod, "_instances", dict(backends_mod._instances))

    reg = PluginRegistry([BUNDLED], entry_points=False, choices=PluginChoices(on={"example"}))
    reg.discover()
    reg.activate()
    out = tmp_path / "stack.layers.json"
    export_document(out, _doc(), reg)
    summary = json.loads(out.read_text())
    assert summary["size"] == [8, 6] and summary["layers"][0]["name"] == "Original"
    assert load_preset("example-soft").rig.lights[0].size == 0.8
    from icportrait_studio import api

    rgb = np.full((4, 4, 3), 0.25, np.float32)
    out_img = api.relight(rgb, api.rig(api.Light(intensity=1.0), ambient=1.0), backend="example-gain").image
    assert np.allclose(out_img, 0.5)
    assert get_backend("example-gain").name == "example-gain"


# --- editors --------------------------------------------------------------------------------------------------


def test_editor_resolution_and_custom_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from icportrait_studio.plugins.editors import (
        available_editors,
        custom_editor,
        load_custom_editors,
        save_custom_editors,
    )

    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake_krita = bindir / "krita"
    fake_krita.write_text("#!/bin/sh\n")
    fake_krita.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setenv("ICPORTRAIT_CONFIG_DIR", str(tmp_path / "cfg"))
    reg = PluginRegistry([BUNDLED], entry_points=False)
    reg.discover()
    found = {e.id: e for e in available_editors(reg, platform="linux")}
    assert "krita" in found and "photoshop" not in found  # no Photoshop for Linux; GIMP only if a flatpak exists
    assert found["krita"].command("/x/p.ora") == [str(fake_krita), "/x/p.ora"] and found["krita"].format == "ora"
    assert found["krita"].note and found["krita"].plugin == "external-editors"
    mine = custom_editor("My tool", "mytool --open", "psd")
    assert mine.argv == ("mytool", "--open", "{file}")
    save_custom_editors([mine])
    assert load_custom_editors() == [mine]
    assert [e.id for e in available_editors(reg, platform="linux")][-1] == "custom:My tool"


@pytest.mark.parametrize("text", ['{"editors": 5}', '{"editors": "abc"}', '{"editors": [5, {"name": 1}]}', "[1]",
                                  '{"editors": [{"name": "x", "argv": 7}]}', "\udcff garbage"])
def test_a_damaged_editors_file_means_no_custom_editors(tmp_path: Path, text: str) -> None:
    """editors.json is read when the Edit In menu is built at start-up: a damaged one must not stop the app."""
    from icportrait_studio.plugins.editors import load_custom_editors

    path = tmp_path / "editors.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    assert load_custom_editors(path) == []


# --- Edit in… round trip ---------------------------------------------------------------------------------------

FAKE_EDITOR = r'''
import sys, time
import numpy as np
import tifffile
path = sys.argv[1]
for value in (1000, 40000):
    time.sleep(0.4)
    arr = tifffile.imread(path)
    arr[:, :, 0] = value
    tifffile.imwrite(path + ".tmp.tif", arr, photometric="rgb")
    new = open(path + ".tmp.tif", "rb").read()
    with open(path, "r+b") as fh:  # write in place, in two halves with a pause, like a slow editor
        fh.write(new[: len(new) // 2]); fh.flush()
        time.sleep(0.05)
        fh.write(new[len(new) // 2 :]); fh.truncate(); fh.flush()
time.sleep(0.2)
'''


@pytest.mark.parametrize("fmt", ["tif", "ora"])
def test_edit_in_round_trip_with_a_fake_editor(tmp_path: Path, fmt: str) -> None:
    from icportrait_studio.plugins.edit_in import EditInSession
    from icportrait_studio.plugins.editors import EditorSpec

    if fmt == "tif":
        script = tmp_path / "fake_editor.py"
        script.write_text(FAKE_EDITOR)
    else:  # an OpenRaster editor: rewrite mergedimage.png (and the top layer) on each save
        script = tmp_path / "fake_ora_editor.py"
        script.write_text(textwrap.dedent(r'''
            import io, sys, time, zipfile
            import numpy as np
            from PIL import Image
            path = sys.argv[1]
            for value in (30, 220):
                time.sleep(0.4)
                with zipfile.ZipFile(path) as zf:
                    entries = {n: zf.read(n) for n in zf.namelist()}
                merged = np.asarray(Image.open(io.BytesIO(entries["mergedimage.png"])).convert("RGB")).copy()
                merged[..., 2] = value
                buf = io.BytesIO(); Image.fromarray(merged).save(buf, "PNG")
                entries["mergedimage.png"] = buf.getvalue()
                with zipfile.ZipFile(path + ".part", "w") as zf:
                    zf.writestr(zipfile.ZipInfo("mimetype"), entries.pop("mimetype"))
                    for n, d in entries.items():
                        zf.writestr(n, d)
                import os; os.replace(path + ".part", path)
            '''))
    editor = EditorSpec("fake", "Fake Editor", fmt, (sys.executable, str(script), "{file}"))
    got: list[tuple[np.ndarray, Path]] = []
    exits: list[int] = []
    lock = threading.Lock()

    def on_version(pixels: np.ndarray, path: Path) -> None:
        with lock:
            got.append((pixels, path))

    rng = np.random.default_rng(3)
    layers = [ExportLayer("Original", rng.random((20, 24, 3), dtype=np.float32) * 0.5, kind="base"),
              ExportLayer("Relit", rng.random((20, 24, 3), dtype=np.float32) * 0.5, kind="relit")]
    reg = PluginRegistry([BUNDLED], entry_points=False)
    reg.discover()
    session = EditInSession(on_version, registry=reg, workdir=tmp_path / "work", poll_interval=0.03, debounce=0.2,
                            on_exit=exits.append)
    edited = session.start(editor, layers, name="my portrait", bit_depth=16)
    assert edited.name == f"my_portrait.{fmt}" and edited.exists()
    try:
        assert session.wait_for_versions(2, timeout=15), f"got {len(session.versions)} versions"
        session.process.wait(timeout=10)
    finally:
        session.stop()
    assert len(got) == 2 and len(session.versions) == 2  # one callback (one history entry) per save
    (p1, path1), (p2, path2) = got
    assert path1 != path2 and path1.exists() and path2.exists()
    assert p1.shape == p2.shape == (20, 24, 3) and p1.dtype == np.float32
    channel = 0 if fmt == "tif" else 2
    expected = (1000 / 65535, 40000 / 65535) if fmt == "tif" else (30 / 255, 220 / 255)
    from icportrait_studio.imaging.color import srgb_to_linear

    for pixels, value in zip((p1, p2), expected, strict=True):
        assert np.allclose(pixels[..., channel], srgb_to_linear(np.float32(value)), atol=2e-3)
    assert session.versions[1].layer_name == "Edited in Fake Editor #2"
    assert exits == [0]


def test_edit_in_converts_a_version_saved_in_another_profile(tmp_path: Path) -> None:
    """An editor that saves the file in its own working space (Adobe RGB here; the portrait had none, so
    sRGB): the version comes back in the portrait's colours, not as Adobe RGB codes read as sRGB."""
    from PySide6.QtGui import QColorSpace

    from icportrait_studio.imaging.profile_convert import convert_between
    from icportrait_studio.plugins.edit_in import EditInSession
    from icportrait_studio.plugins.editors import EditorSpec

    adobe = bytes(QColorSpace(QColorSpace.NamedColorSpace.AdobeRgb).iccProfile().data())
    (tmp_path / "adobe.icc").write_bytes(adobe)
    script = tmp_path / "profile_editor.py"
    script.write_text(textwrap.dedent(r'''
        import os, sys, time
        import tifffile
        path, icc = sys.argv[1], open(sys.argv[2], "rb").read()
        time.sleep(0.4)
        arr = tifffile.imread(path)
        tifffile.imwrite(path + ".part.tif", arr, photometric="rgb", extratags=[(34675, 7, len(icc), icc, True)])
        os.replace(path + ".part.tif", path)
        '''))
    command = (sys.executable, str(script), "{file}", str(tmp_path / "adobe.icc"))
    editor = EditorSpec("fake", "Profile Editor", "tif", command)
    got: list[np.ndarray] = []
    # muted colours: inside sRGB's gamut, so the conversion can be undone to check it
    base = 0.25 + np.random.default_rng(4).random((20, 24, 3), dtype=np.float32) * 0.25
    reg = PluginRegistry([BUNDLED], entry_points=False)
    reg.discover()
    session = EditInSession(lambda pixels, path: got.append(pixels), registry=reg, workdir=tmp_path / "work",
                            poll_interval=0.03, debounce=0.2)
    session.start(editor, [ExportLayer("Original", base, kind="base")], name="p", bit_depth=16)
    try:
        assert session.wait_for_versions(1, timeout=15)
    finally:
        session.stop()
    held = got[0]
    as_written = convert_between(held, None, adobe)  # back to the codes the editor wrote
    assert as_written is not None
    np.testing.assert_allclose(as_written, base, atol=2e-3)  # the editor kept the codes, tagged Adobe RGB
    assert np.abs(held - base).mean() > 0.005  # so their colours, in sRGB, are not those codes


def test_edit_in_says_when_a_version_lost_precision_in_its_colour_conversion(tmp_path: Path) -> None:
    """A 16-bit version saved in a profile built from tables is converted through LittleCMS at 8-bit
    precision: the version says so (the app shows it with the new layer), as an imported file does."""
    from test_display_profile import _adobe_as_tables

    from icportrait_studio.plugins.edit_in import EditInSession
    from icportrait_studio.plugins.editors import EditorSpec

    (tmp_path / "tables.icc").write_bytes(_adobe_as_tables()[0])
    script = tmp_path / "profile_editor.py"
    script.write_text(textwrap.dedent(r'''
        import os, sys, time
        import tifffile
        path, icc = sys.argv[1], open(sys.argv[2], "rb").read()
        time.sleep(0.4)
        arr = tifffile.imread(path)
        assert arr.dtype.itemsize == 2
        tifffile.imwrite(path + ".part.tif", arr, photometric="rgb", extratags=[(34675, 7, len(icc), icc, True)])
        os.replace(path + ".part.tif", path)
        '''))
    editor = EditorSpec("fake", "Profile Editor", "tif", (sys.executable, str(script), "{file}",
                                                          str(tmp_path / "tables.icc")))
    base = 0.25 + np.random.default_rng(5).random((20, 24, 3), dtype=np.float32) * 0.25
    reg = PluginRegistry([BUNDLED], entry_points=False)
    reg.discover()
    session = EditInSession(lambda *_: None, registry=reg, workdir=tmp_path / "work", poll_interval=0.03,
                            debounce=0.2)
    session.start(editor, [ExportLayer("Original", base, kind="base")], name="p", bit_depth=16)
    try:
        assert session.wait_for_versions(1, timeout=15)
    finally:
        session.stop()
    version = session.versions[0]
    assert np.abs(version.pixels - base).mean() > 0.005  # converted out of the (Adobe RGB) tables
    assert version.note is not None and "8-bit precision" in version.note


def test_edit_in_reports_an_editor_that_cannot_start(tmp_path: Path) -> None:
    from icportrait_studio.errors import InputError
    from icportrait_studio.plugins.edit_in import EditInSession
    from icportrait_studio.plugins.editors import EditorSpec

    reg = PluginRegistry([BUNDLED], entry_points=False)
    reg.discover()
    session = EditInSession(lambda *_: None, registry=reg, workdir=tmp_path)
    with pytest.raises(InputError, match="cannot start Nope"):
        session.start(EditorSpec("nope", "Nope", "tif", (str(tmp_path / "missing-binary"), "{file}")), _doc().layers)
    assert not session.running


def test_cli_lists_formats() -> None:
    r = subprocess.run([sys.executable, "-m", "icportrait_studio.cli", "export", "--list-formats"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert ".psd" in r.stdout and ".ora" in r.stdout and ".tif" in r.stdout
