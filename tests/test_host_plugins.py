"""The thin host plugins (Krita, GIMP 3, Photoshop UXP) against small fakes of their host APIs and a real
loopback bridge: each sends the active layer and gets the result back as a new layer. Neither Krita,
GIMP nor Photoshop is needed; the UXP panel runs in node with a fake ``photoshop`` module."""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from icportrait_studio.imaging.color import decode_to_linear, encode_from_linear
from icportrait_studio.plugins.bridge_server import BridgeServer
from icportrait_studio.plugins.registry import bundled_plugins_dir

PLUGINS = bundled_plugins_dir()
KRITA_PKG = PLUGINS / "krita" / "icportrait_bridge"
GIMP_DIR = PLUGINS / "gimp" / "icportrait-bridge"
UXP_DIR = PLUGINS / "photoshop_uxp"


def halve(inp, progress, cancel):
    return inp.rgb * 0.5, None


def expected_halved(rgb: np.ndarray, depth: int) -> np.ndarray:
    return encode_from_linear(decode_to_linear(rgb) * 0.5, depth)


@pytest.fixture
def bridge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BridgeServer]:
    """A running bridge whose token and address sit in a temporary config folder, where the clients look."""
    cfg = tmp_path / "config"
    monkeypatch.setenv("ICPORTRAIT_CONFIG_DIR", str(cfg))
    monkeypatch.delenv("ICPORTRAIT_BRIDGE_URL", raising=False)
    monkeypatch.delenv("ICPORTRAIT_BRIDGE_TOKEN", raising=False)
    srv = BridgeServer(port=0, token_path=cfg / "bridge_token", state_path=cfg / "bridge.json", runner=halve)
    srv.start_in_thread()
    yield srv
    srv.stop()


def test_the_two_python_clients_are_the_same_file() -> None:
    assert (KRITA_PKG / "bridge_client.py").read_bytes() == (GIMP_DIR / "bridge_client.py").read_bytes()


# --- Krita -------------------------------------------------------------------------------------------------


class Signal:
    def __init__(self) -> None:
        self.slots: list = []

    def connect(self, fn) -> None:
        self.slots.append(fn)

    def emit(self, *args) -> None:
        for fn in list(self.slots):
            fn(*args)


class FakeQTimer:
    instances: ClassVar[list[FakeQTimer]] = []

    def __init__(self, parent=None) -> None:
        self.timeout, self.active, self.interval = Signal(), False, 0
        FakeQTimer.instances.append(self)

    def setInterval(self, ms: int) -> None:
        self.interval = ms

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def isActive(self) -> bool:
        return self.active


def fake_qt(binding: str, monkeypatch: pytest.MonkeyPatch, choice: str = "loop") -> list[str]:
    """Install a fake PyQt5 or PyQt6 (and make the other one unimportable); returns the warnings shown."""
    warnings: list[str] = []
    core = types.ModuleType(f"{binding}.QtCore")
    core.QTimer, core.QByteArray = FakeQTimer, bytes
    widgets = types.ModuleType(f"{binding}.QtWidgets")
    widgets.QMessageBox = types.SimpleNamespace(warning=lambda parent, title, text: warnings.append(text))
    widgets.QInputDialog = types.SimpleNamespace(getItem=lambda parent, title, label, items, current, editable:
                                                 (choice if choice in items else items[current], True))
    pkg = types.ModuleType(binding)
    pkg.QtCore, pkg.QtWidgets = core, widgets
    other = "PyQt5" if binding == "PyQt6" else "PyQt6"
    for name, mod in ((binding, pkg), (f"{binding}.QtCore", core), (f"{binding}.QtWidgets", widgets),
                      (other, None), (f"{other}.QtCore", None), (f"{other}.QtWidgets", None)):
        monkeypatch.setitem(sys.modules, name, mod)
    return warnings


class FakeNode:
    def __init__(self, name: str, kind: str = "paintlayer", depth: str = "U8", pixels: bytes = b"",
                 size: tuple[int, int] = (0, 0)) -> None:
        self._name, self._type, self._depth, self.pixels, self.size = name, kind, depth, pixels, size
        self.children: list[FakeNode] = []
        self.parent: FakeNode | None = None

    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return self._type

    def colorModel(self) -> str:
        return "RGBA"

    def colorDepth(self) -> str:
        return self._depth

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        assert (x, y, w, h) == (0, 0, *self.size)
        return self.pixels

    def setPixelData(self, data: bytes, x: int, y: int, w: int, h: int) -> None:
        self.pixels, self.size = bytes(data), (w, h)

    def parentNode(self) -> FakeNode | None:
        return self.parent

    def addChildNode(self, child: FakeNode, above: FakeNode | None) -> bool:
        child.parent = self
        self.children.insert(self.children.index(above) + 1 if above in self.children else 0, child)
        return True


class FakeDocument:
    def __init__(self, w: int, h: int, layer: FakeNode) -> None:
        self.w, self.h, self.root, self.active, self.refreshed = w, h, FakeNode("root", "grouplayer"), layer, 0
        self.root.addChildNode(layer, None)

    def width(self) -> int:
        return self.w

    def height(self) -> int:
        return self.h

    def activeNode(self) -> FakeNode:
        return self.active

    def rootNode(self) -> FakeNode:
        return self.root

    def createNode(self, name: str, kind: str) -> FakeNode:
        return FakeNode(name, kind, self.active.colorDepth())

    def refreshProjection(self) -> None:
        self.refreshed += 1


class FakeWindow:
    def __init__(self) -> None:
        self.actions: dict[str, types.SimpleNamespace] = {}

    def qwindow(self):
        return None

    def createAction(self, action_id: str, text: str, menu: str):
        self.actions[action_id] = types.SimpleNamespace(text=text, menu=menu, triggered=Signal())
        return self.actions[action_id]


class FakeKrita:
    current: FakeKrita | None = None

    def __init__(self) -> None:
        self.extensions: list = []
        self.document: FakeDocument | None = None
        self.window = FakeWindow()

    @classmethod
    def instance(cls) -> FakeKrita:
        return cls.current

    def addExtension(self, ext) -> None:
        self.extensions.append(ext)

    def activeDocument(self) -> FakeDocument | None:
        return self.document

    def activeWindow(self) -> FakeWindow:
        return self.window


@pytest.fixture(autouse=True)
def _forget_host_plugin_modules() -> Iterator[None]:
    """The plugins are imported under their own names; drop them afterwards so each test loads them fresh."""
    yield
    for name in [m for m in sys.modules if m.split(".")[0] in ("icportrait_bridge", "icportrait_gimp_plugin",
                                                               "icportrait_gimp_bridge_client")]:
        del sys.modules[name]


def load_krita_plugin(monkeypatch: pytest.MonkeyPatch) -> FakeKrita:
    krita = FakeKrita()
    FakeKrita.current = krita

    class Extension:
        def __init__(self, parent) -> None:
            self.parent = parent

    monkeypatch.setitem(sys.modules, "krita", types.SimpleNamespace(Extension=Extension, Krita=FakeKrita))
    spec = importlib.util.spec_from_file_location("icportrait_bridge", KRITA_PKG / "__init__.py",
                                                  submodule_search_locations=[str(KRITA_PKG)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["icportrait_bridge"] = module
    spec.loader.exec_module(module)
    return krita


def pump(timer: FakeQTimer, limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    while timer.active and time.monotonic() < deadline:
        timer.timeout.emit()
        time.sleep(0.01)
    assert not timer.active, "the plugin kept polling"


@pytest.mark.parametrize(("binding", "depth"), [("PyQt5", "U8"), ("PyQt6", "U16")])
def test_krita_plugin_sends_the_layer_and_adds_the_result(bridge: BridgeServer, monkeypatch: pytest.MonkeyPatch,
                                                          binding: str, depth: str) -> None:
    warnings = fake_qt(binding, monkeypatch, choice="rembrandt")
    krita = load_krita_plugin(monkeypatch)
    assert len(krita.extensions) == 1
    ext = krita.extensions[0]
    ext.createActions(krita.window)
    action = krita.window.actions["icportrait_relight_layer"]
    assert action.menu == "tools/scripts"

    w, h = 6, 4
    rng = np.random.default_rng(5)
    dtype = np.uint8 if depth == "U8" else np.dtype("<u2")
    rgba = rng.integers(0, 256 if depth == "U8" else 65536, (h, w, 4)).astype(dtype)
    bgra = rgba[..., [2, 1, 0, 3]].tobytes()
    layer = FakeNode("Background", depth=depth, pixels=bgra, size=(w, h))
    krita.document = FakeDocument(w, h, layer)
    FakeQTimer.instances.clear()
    action.triggered.emit()
    assert warnings == [] and len(ext.tasks) == 1
    pump(FakeQTimer.instances[-1])
    assert warnings == [] and ext.tasks == []
    names = [n.name() for n in krita.document.root.children]
    assert names == ["Background", "Relit (rembrandt)"]  # inserted directly above the active layer
    new = krita.document.root.children[1]
    assert new.size == (w, h) and krita.document.refreshed == 1
    out = np.frombuffer(new.pixels, dtype).reshape(h, w, 4)[..., [2, 1, 0, 3]]
    assert np.array_equal(out[..., 3], rgba[..., 3])
    assert np.abs(out[..., :3].astype(int) - expected_halved(rgba[..., :3], 8 if depth == "U8" else 16)).max() <= 1


def test_krita_plugin_explains_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warnings = fake_qt("PyQt5", monkeypatch)
    krita = load_krita_plugin(monkeypatch)
    ext = krita.extensions[0]
    assert ext.relight_active_layer() is None and "open an image" in warnings[-1]
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ICPORTRAIT_BRIDGE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ICPORTRAIT_BRIDGE_TOKEN", "x" * 40)
    krita.document = FakeDocument(2, 2, FakeNode("L", pixels=b"\0" * 16, size=(2, 2)))
    assert ext.relight_active_layer() is None and "not reachable" in warnings[-1]
    monkeypatch.setenv("ICPORTRAIT_BRIDGE_URL", "http://198.51.100.7:47615")
    assert ext.relight_active_layer() is None and "refusing" in warnings[-1]  # never leaves the machine


# --- GIMP 3 ------------------------------------------------------------------------------------------------


class FakeBuffer:
    def __init__(self, data: bytes = b"") -> None:
        self.data, self.flushed = data, False

    def get(self, rect, scale, fmt, abyss) -> bytes:
        assert fmt == "R'G'B'A u16" and scale == 1.0
        return self.data

    def set(self, rect, fmt, data) -> None:
        assert fmt == "R'G'B'A u16"
        self.data = bytes(data)

    def flush(self) -> None:
        self.flushed = True


def fake_gimp(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    class Layer:
        def __init__(self, name: str, w: int, h: int, data: bytes = b"") -> None:
            self.name, self.w, self.h, self.buffer = name, w, h, FakeBuffer(data)
            self.offsets, self.parent = (0, 0), None

        @classmethod
        def new(cls, image, name, w, h, kind, opacity, mode):
            assert kind == "RGBA_IMAGE" and opacity == 100.0
            return cls(name, w, h)

        def get_width(self) -> int:
            return self.w

        def get_height(self) -> int:
            return self.h

        def get_offsets(self):
            return (True, *self.offsets)

        def set_offsets(self, x: int, y: int) -> None:
            self.offsets = (x, y)

        def get_buffer(self) -> FakeBuffer:
            return self.buffer

        def get_parent(self):
            return self.parent

        def update(self, *args) -> None:
            pass

    class Procedure:
        def __init__(self, plugin, name, kind, run, data) -> None:
            self.name, self.run_func, self.settings = name, run, {}

        def __getattr__(self, item):
            if item.startswith(("set_", "add_")):
                return lambda *args: self.settings.setdefault(item, []).append(args)
            raise AttributeError(item)

        def new_return_values(self, status, error):
            return (status, error)

    class GLibError(Exception):
        pass

    ns = types.SimpleNamespace
    gimp = ns(PlugIn=type("PlugIn", (), {"__gtype__": object()}), Layer=Layer,
              ImageProcedure=ns(new=Procedure), PDBProcType=ns(PLUGIN="PLUGIN"),
              PDBStatusType=ns(SUCCESS="SUCCESS", EXECUTION_ERROR="EXECUTION_ERROR", CANCEL="CANCEL"),
              RunMode=ns(INTERACTIVE="INTERACTIVE", NONINTERACTIVE="NONINTERACTIVE"),
              ProcedureSensitivityMask=ns(DRAWABLE="DRAWABLE"), ImageType=ns(RGBA_IMAGE="RGBA_IMAGE"),
              LayerMode=ns(NORMAL="NORMAL"), progress=[], flushed=[])
    gimp.progress_init = lambda text: gimp.progress.append(text)
    gimp.progress_update = lambda f: gimp.progress.append(f)
    gimp.displays_flush = lambda: gimp.flushed.append(True)
    gimp.main = lambda *a: pytest.fail("Gimp.main must only run when GIMP starts the plug-in")
    repo = types.ModuleType("gi.repository")
    repo.Gimp, repo.GLib = gimp, ns(Error=GLibError)
    repo.Gegl = ns(Rectangle=ns(new=lambda x, y, w, h: (x, y, w, h)), AbyssPolicy=ns(CLAMP="CLAMP"))
    repo.GObject = ns(ParamFlags=ns(READWRITE="READWRITE"))
    gi = types.ModuleType("gi")
    gi.require_version = lambda name, version: None
    gi.repository = repo
    monkeypatch.setitem(sys.modules, "gi", gi)
    monkeypatch.setitem(sys.modules, "gi.repository", repo)
    return gimp


class FakeImage:
    def __init__(self, layer) -> None:
        self.layers, self.undo = [layer], []

    def insert_layer(self, layer, parent, position) -> None:
        self.layers.insert(position, layer)

    def get_item_position(self, layer) -> int:
        return self.layers.index(layer)

    def undo_group_start(self) -> None:
        self.undo.append("start")

    def undo_group_end(self) -> None:
        self.undo.append("end")


def test_gimp_plugin_sends_the_layer_and_adds_the_result(bridge: BridgeServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    gimp = fake_gimp(monkeypatch)
    spec = importlib.util.spec_from_file_location("icportrait_gimp_plugin", GIMP_DIR / "icportrait-bridge.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    plugin = mod.IcPortraitBridge()
    assert plugin.do_query_procedures() == [mod.PROC_NAME]
    proc = plugin.do_create_procedure(mod.PROC_NAME)
    assert proc.settings["add_menu_path"] == [("<Image>/Filters/Light and Shadow/",)]
    assert proc.settings["set_image_types"] == [("RGB*",)]

    w, h = 5, 3
    rgba = np.random.default_rng(9).integers(0, 65536, (h, w, 4)).astype("<u2")
    layer = gimp.Layer("Photo", w, h, rgba.tobytes())
    layer.offsets = (10, 20)
    image = FakeImage(layer)
    config = types.SimpleNamespace(get_property=lambda name: {"preset": "split"}[name])
    status, _ = proc.run_func(proc, gimp.RunMode.NONINTERACTIVE, image, [layer], config, None)
    assert status == "SUCCESS"
    assert [lyr.name for lyr in image.layers] == ["Relit (split)", "Photo"]  # GIMP's position 0 is the top
    new = image.layers[0]
    assert new.offsets == (10, 20) and new.buffer.flushed and image.undo == ["start", "end"] and gimp.flushed
    out = np.frombuffer(new.buffer.data, "<u2").reshape(h, w, 4)
    assert np.array_equal(out[..., 3], rgba[..., 3])
    assert np.abs(out[..., :3].astype(int) - expected_halved(rgba[..., :3], 16)).max() <= 1
    assert gimp.progress and gimp.progress[0].startswith("Relighting")
    # Two layers selected: a clear error for GIMP to show, no traceback.
    status, error = proc.run_func(proc, gimp.RunMode.NONINTERACTIVE, image, [layer, new], config, None)
    assert status == "EXECUTION_ERROR" and "exactly one layer" in str(error)


# --- Photoshop UXP -------------------------------------------------------------------------------------------

NODE = shutil.which("node")

UXP_HARNESS = r"""
const Module = require("module");
const [panelPath, url, token, depthArg] = process.argv.slice(2);
const depth = Number(depthArg);
const w = 3, h = 2;
const input = depth === 16 ? new Uint16Array(w * h * 4) : new Uint8Array(w * h * 4);
for (let i = 0; i < input.length; i++) input[i] = depth === 16 ? (i * 1297) % 32769 : (i * 37) % 256;
const created = [], puts = [];
const doc = {
  id: 1, bitsPerChannel: depth === 16 ? "bitDepth16" : "bitDepth8", activeLayers: [{ id: 7, name: "Photo" }],
  createPixelLayer: async (o) => { const l = { id: 100 + created.length, name: o.name }; created.push(l); return l; },
};
let modal = 0;
const ps = {
  app: { activeDocument: doc },
  core: { executeAsModal: async (fn, opts) => { modal++; return fn({}); } },
  imaging: {
    getPixels: async (o) => ({
      imageData: { width: w, height: h, components: 4, getData: async () => input, dispose() {} },
      sourceBounds: { left: 5, top: 6, right: 5 + w, bottom: 6 + h },
    }),
    createImageDataFromBuffer: async (buf, opts) => ({ buf, opts, dispose() {} }),
    putPixels: async (o) => { puts.push({ layerID: o.layerID, bounds: o.targetBounds, data: Array.from(o.imageData.buf),
                                          opts: o.imageData.opts }); },
  },
};
const load = Module._load;
Module._load = function (request, parent, isMain) {
  if (request === "photoshop") return ps;
  if (request === "uxp") throw new Error("not in UXP");
  return load.apply(this, arguments);
};
const panel = require(panelPath);
panel.relightActiveLayer(ps, { url, token, preset: "loop" })
  .then((layer) => console.log(JSON.stringify({ layer, created, puts, modal, input: Array.from(input) })))
  .catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_uxp_panel_javascript_is_valid() -> None:
    for js in UXP_DIR.glob("*.js"):
        r = subprocess.run([NODE, "--check", str(js)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    manifest = json.loads((UXP_DIR / "manifest.json").read_text())
    assert manifest["manifestVersion"] == 5 and manifest["host"]["app"] == "PS"
    assert manifest["entrypoints"][0]["type"] == "panel"
    assert all(d.startswith(("http://127.0.0.1", "http://localhost")) for d in
               manifest["requiredPermissions"]["network"]["domains"])


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.parametrize("depth", [8, 16])
def test_uxp_panel_round_trip_against_fake_photoshop(bridge: BridgeServer, tmp_path: Path, depth: int) -> None:
    harness = tmp_path / "harness.js"
    harness.write_text(UXP_HARNESS)
    r = subprocess.run([NODE, str(harness), str(UXP_DIR / "index.js"), bridge.url, bridge.token, str(depth)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["created"] == [{"id": 100, "name": "Relit (loop)"}] and got["modal"] == 2
    put = got["puts"][0]
    assert put["layerID"] == 100 and put["bounds"] == {"left": 5, "top": 6}
    assert put["opts"]["width"] == 3 and put["opts"]["components"] == 4
    src = np.array(got["input"]).reshape(2, 3, 4)
    out = np.array(put["data"]).reshape(2, 3, 4)
    assert np.array_equal(out[..., 3], src[..., 3])
    if depth == 8:
        assert np.abs(out[..., :3] - expected_halved(src[..., :3].astype(np.uint8), 8)).max() <= 1
    else:  # Photoshop's 16-bit range is 0..32768
        full = np.rint(src[..., :3] * (65535 / 32768)).astype(np.uint16)
        want = np.rint(expected_halved(full, 16) * (32768 / 65535))
        assert out.max() <= 32768 and np.abs(out[..., :3] - want).max() <= 1
