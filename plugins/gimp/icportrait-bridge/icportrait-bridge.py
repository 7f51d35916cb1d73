#!/usr/bin/env python3
"""GIMP 3 plug-in: Filters ▸ Light and Shadow ▸ Relight with IC-Portrait…

Sends the active layer (16 bits per channel, whatever the image precision: GEGL converts) to IC-Portrait
Studio's live bridge and inserts the relit result as a new layer above it, as one undo step. GIMP runs
plug-ins in their own process, so waiting for the job here does not freeze GIMP's window.
Install: copy this folder (``icportrait-bridge/``, both files) into GIMP's ``plug-ins`` folder.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402

PROC_NAME = "python-fu-icportrait-relight"
PIXEL_FORMAT = "R'G'B'A u16"  # perceptual (sRGB-encoded) 16-bit RGBA, native (little) endian
TIMEOUT_S = 600.0


def _client_module():
    """The bridge client next to this file, loaded by path (GIMP does not put plug-in folders on sys.path)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bridge_client.py")
    spec = importlib.util.spec_from_file_location("icportrait_gimp_bridge_client", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class IcPortraitBridge(Gimp.PlugIn):
    def do_query_procedures(self):
        return [PROC_NAME]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run, None)
        procedure.set_image_types("RGB*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label("Relight with IC-Portrait…")
        procedure.add_menu_path("<Image>/Filters/Light and Shadow/")
        procedure.set_documentation("Relight the active layer with IC-Portrait Studio",
                                    "Sends the layer to IC-Portrait Studio's bridge (icportrait bridge serve) "
                                    "and adds the relit result as a new layer.", name)
        procedure.set_attribution("IC-Portrait Studio", "IC-Portrait Studio", "2025")
        procedure.add_string_argument("preset", "Light preset", "An IC-Portrait rig preset (loop, rembrandt, …)",
                                      "loop", GObject.ParamFlags.READWRITE)
        return procedure

    def run(self, procedure, run_mode, image, drawables, config, run_data):
        if run_mode == Gimp.RunMode.INTERACTIVE and not _ask(procedure, config):
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        try:
            relight_drawable(image, drawables, str(config.get_property("preset") or "loop"))
        except Exception as exc:  # every failure becomes GIMP's error message, never a traceback dialog
            return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(str(exc)))
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def _ask(procedure, config) -> bool:
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi

    GimpUi.init(PROC_NAME)
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Relight with IC-Portrait")
    dialog.fill(None)
    ok = dialog.run()
    dialog.destroy()
    return bool(ok)


def relight_drawable(image, drawables, preset: str, client=None):
    """Send one layer, wait for the job, add the result above it. Returns the new layer."""
    bc = _client_module()
    if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
        raise bc.BridgeError("select exactly one layer to relight")
    client = client or bc.BridgeClient.from_environment()
    layer = drawables[0]
    width, height = layer.get_width(), layer.get_height()
    _ok, off_x, off_y = layer.get_offsets()
    rect = Gegl.Rectangle.new(0, 0, width, height)
    data = layer.get_buffer().get(rect, 1.0, PIXEL_FORMAT, Gegl.AbyssPolicy.CLAMP)

    Gimp.progress_init("Relighting with IC-Portrait…")
    job_id = client.submit_raw(bytes(data), width, height, order="rgba", bit_depth=16, params={"preset": preset})
    state = client.wait(job_id, timeout=TIMEOUT_S, on_progress=lambda f, _stage: Gimp.progress_update(f))
    if state["state"] != "done":
        raise bc.BridgeError(f"the relight {state['state']}: {state.get('error') or ''}".strip(": "))
    result = client.result_raw(job_id)

    image.undo_group_start()
    try:
        new = Gimp.Layer.new(image, f"Relit ({preset})", width, height, Gimp.ImageType.RGBA_IMAGE, 100.0,
                             Gimp.LayerMode.NORMAL)
        image.insert_layer(new, layer.get_parent(), image.get_item_position(layer))  # directly above
        new.set_offsets(off_x, off_y)
        buffer = new.get_buffer()
        buffer.set(rect, PIXEL_FORMAT, result)
        buffer.flush()
        new.update(0, 0, width, height)
    finally:
        image.undo_group_end()
    Gimp.displays_flush()
    return new


if __name__ == "__main__":
    Gimp.main(IcPortraitBridge.__gtype__, sys.argv)
