#!/usr/bin/env python3
"""aiedit for GIMP 3: Filters > AI (aiedit).

Each operation is a PDB procedure ``plug-in-aiedit-<operation>`` that also runs
non-interactively with string arguments prompt, model, params (JSON), server-url and api-key
(empty: the saved settings).
"""

import json
import sys

import gi

gi.require_version("Gimp", "3.0")
import aiedit_client as ac  # noqa: E402
import aiedit_gimp as host  # noqa: E402
from gi.repository import Gimp, GLib, GObject  # noqa: E402

PREFIX = "plug-in-aiedit-"
MENU_PATH = "<Image>/Filters/AI (aiedit)"
OPERATIONS = {
    "generate": ("_Generate…", "Generate an image from a prompt into the selection or image"),
    "edit": ("_Edit…", "Change the selection (or layer) by an instruction"),
    "inpaint": ("_Inpaint selection…", "Repaint the selected area"),
    "outpaint": ("_Outpaint…", "Extend the layer beyond its edges"),
    "upscale": ("_Upscale…", "Enlarge the layer with a super-resolution model"),
    "restore": ("_Restore…", "Restore faces, remove noise or repair old photos"),
    "video": ("Image to _video…", "Animate the layer into frames"),
    "preprocess": ("_Control map from layer…",
                   "Turn the layer into a control map (edges, scribble, line art, depth, pose) "
                   "to use as a control layer"),
}
SELECTION_OPERATIONS = ("edit", "inpaint")
CREATIVE_OPERATIONS = ("generate", "inpaint")  # control layers, LoRAs, styles
RW = GObject.ParamFlags.READWRITE


class AieditPlugIn(Gimp.PlugIn):
    """Registers one procedure per operation plus Settings."""

    def do_query_procedures(self):
        return [PREFIX + op for op in OPERATIONS] + [PREFIX + "results", PREFIX + "settings"]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        if name == PREFIX + "settings":
            return self._settings_procedure(name)
        if name == PREFIX + "results":
            return self._results_procedure(name)
        return self._operation_procedure(name, name[len(PREFIX):])

    def _operation_procedure(self, name, op_id):
        label, blurb = OPERATIONS[op_id]
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_operation,
                                            op_id)
        procedure.set_image_types("RGB*, GRAY*")
        mask = Gimp.ProcedureSensitivityMask
        sensitivity = mask.DRAWABLE | mask.DRAWABLES
        if op_id == "generate":
            sensitivity |= mask.NO_DRAWABLES
        procedure.set_sensitivity_mask(sensitivity)
        procedure.set_menu_label(label)
        procedure.add_menu_path(MENU_PATH)
        procedure.set_documentation(blurb, f"{blurb}, using the aiedit server. {__doc__}", name)
        procedure.set_attribution("aiedit", "aiedit authors", "2025")
        add_common_arguments(procedure)
        if op_id != "generate":
            procedure.add_choice_argument("source", "Pixels _from", "Which pixels to send",
                                          source_choice(), "layer", RW)
        if op_id in SELECTION_OPERATIONS:
            procedure.add_int_argument("context-margin", "Context _margin",
                                       "Pixels of surroundings sent around the selection",
                                       0, 2048, host.DEFAULT_MARGIN, RW)
        if op_id in CREATIVE_OPERATIONS:
            procedure.add_string_argument("style", "St_yle",
                                          "A style preset id from the server; empty: none", "",
                                          RW)
            procedure.add_string_argument(
                "controls", "Control _layers (JSON)",
                'Control layers: [{"layer": "Sketch", "kind": "scribble", "strength": 0.8, '
                '"preprocess": false}], layer by name or id; kind scribble, lineart, canny, '
                'depth, pose or reference', "[]", RW)
        procedure.add_choice_argument("if-image-changed", "If the image _changed",
                                      "What to do with results when the image was closed, "
                                      "cropped or resized while the job ran",
                                      image_changed_choice(), "stop", RW)
        if op_id == "upscale":
            procedure.add_choice_argument("upscale-into", "Put the result _into",
                                          "A new image, or the resized current image",
                                          upscale_choice(), "new-image", RW)
        return procedure

    def _results_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_results,
                                            None)
        procedure.set_image_types("RGB*, GRAY*")
        mask = Gimp.ProcedureSensitivityMask
        procedure.set_sensitivity_mask(mask.DRAWABLE | mask.DRAWABLES | mask.NO_DRAWABLES)
        procedure.set_menu_label("_Results kept for later…")
        procedure.add_menu_path(MENU_PATH)
        procedure.set_documentation("Results of earlier aiedit jobs not applied yet",
                                    "Browse the results kept for later (or finished after "
                                    "the plug-in was closed) and apply the ones you want; "
                                    "non-interactively, applies all of them", name)
        procedure.set_attribution("aiedit", "aiedit authors", "2025")
        add_server_arguments(procedure)
        return procedure

    def _settings_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_settings,
                                            None)
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.ALWAYS)
        procedure.set_menu_label("_Settings…")
        procedure.add_menu_path(MENU_PATH)
        procedure.set_documentation("aiedit server URL and API key",
                                    "Saves the aiedit server URL and API key for all aiedit "
                                    "procedures and checks the connection", name)
        procedure.set_attribution("aiedit", "aiedit authors", "2025")
        add_server_arguments(procedure)
        return procedure


def add_common_arguments(procedure):
    procedure.add_string_argument("prompt", "_Prompt", "What to create or change", "", RW)
    procedure.add_string_argument("model", "_Model", "Model id; empty: the server's default",
                                  "", RW)
    procedure.add_string_argument("params", "P_arameters (JSON)",
                                  "The operation's parameters as a JSON object", "{}", RW)
    add_server_arguments(procedure)


def add_server_arguments(procedure):
    procedure.add_string_argument("server-url", "_Server URL",
                                  "aiedit server URL; empty: the saved setting", "", RW)
    procedure.add_string_argument("api-key", "API _key",
                                  "aiedit API key; empty: the saved setting", "", RW)


def source_choice():
    choice = Gimp.Choice.new()
    choice.add("layer", 0, "Active layer", "The pixels of the active layer")
    choice.add("visible", 1, "Visible image", "What you see: all visible layers merged")
    return choice


def image_changed_choice():
    choice = Gimp.Choice.new()
    choice.add("stop", 0, "Stop and keep the results",
               "Report it; the results wait in the journal for the next run")
    choice.add("old-position", 1, "Place at the old position",
               "Insert at the offsets the job was sent with (a new image if it was closed)")
    choice.add("discard", 2, "Discard the results", "Insert nothing")
    return choice


def upscale_choice():
    choice = Gimp.Choice.new()
    choice.add("new-image", 0, "New image", "Open the result as a new image")
    choice.add("resize", 1, "Resize this image", "Scale this image and add the result as a layer")
    return choice


def succeed(procedure):
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def fail(procedure, message):
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))


def argument(config, name, default=None):
    spec = config.find_property(name)
    return config.get_property(name) if spec is not None else default


def run_operation(procedure, run_mode, image, drawables, config, op_id):
    interactive = run_mode == Gimp.RunMode.INTERACTIVE
    try:
        client = host.make_client(argument(config, "server-url", ""),
                                  argument(config, "api-key", ""))
        anchor = host.anchor_layer(image, drawables)
        if interactive:
            import aiedit_dialog

            aiedit_dialog.offer_recovered(client, image, anchor)
        operation = client.operation(op_id)
        if interactive:
            import aiedit_dialog

            if not aiedit_dialog.ask(procedure, config, operation, image, client):
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        plan = host.plan_job(operation, image, anchor, argument(config, "prompt", ""),
                             argument(config, "model", ""), parse_params(config),
                             argument(config, "source", "layer"),
                             argument(config, "context-margin", host.DEFAULT_MARGIN),
                             host.parse_controls(image, argument(config, "controls", "")),
                             argument(config, "style", ""))
        plan.options = plan_options(config, operation)
        progress = host.GimpProgress(f"aiedit: {op_id}")
        window = None
        if interactive:
            import aiedit_dialog

            window = aiedit_dialog.PreviewWindow(f"aiedit: {op_id}")
            progress.on_preview, progress.pump = window.show_preview, window.pump
        try:
            outcome = host.execute(client, plan, progress)
        finally:
            if window is not None:
                window.close()
        host.record_history(plan, outcome.job)
        rerender = None
        if host.ReRender.possible(plan, operation, outcome.job):
            rerender = host.ReRender(client, plan, outcome.job)
        if interactive and (len(outcome.images) > 1 or rerender) and op_id != "video" \
                and fits(image, plan):
            import aiedit_browser

            aiedit_browser.browse(image, anchor, [aiedit_browser.Pending(plan, outcome)],
                                  rerender)
        else:
            place_results(image, anchor, plan, outcome, interactive,
                          argument(config, "if-image-changed", "stop"))
            host.forget(outcome.job["id"])
            host.set_history_state(outcome.job["id"], "applied")
        if interactive:
            Gimp.displays_flush()
        return succeed(procedure)
    except ac.AieditError as error:
        return fail(procedure, str(error))
    except Exception as error:  # noqa: BLE001 - GIMP shows this message; a crash shows nothing
        import traceback

        traceback.print_exc()
        return fail(procedure, f"aiedit {op_id} stopped on an unexpected error: {error!r} "
                               "(details on the terminal GIMP runs in)")


def fits(image, plan) -> bool:
    """Whether the results can go where they were made for (else ``place_results`` asks)."""
    try:
        host.follow_geometry(image, plan.geometry)
    except host.ImageChanged:
        return False
    return True


def place_results(image, anchor, plan, outcome, interactive: bool, if_changed: str):
    """Insert the results; when the image changed under the job, ask (interactive) or do what
    ``if_changed`` says. "stop" keeps the job in the journal for a later run."""
    try:
        return host.insert_results(image, anchor, plan, outcome, interactive)
    except host.ImageChanged as change:
        placement = if_changed
        if interactive:
            import aiedit_dialog

            placement = aiedit_dialog.ask_placement(str(change), change.closed)
        if placement not in ("old-position", "discard"):
            raise ac.AieditError(f"{change} The results are kept: the next aiedit run offers "
                                 "them again.", change.code) from None
        return host.insert_results(image, anchor, plan, outcome, interactive, placement)


def parse_params(config) -> dict:
    text = (argument(config, "params", "") or "").strip() or "{}"
    try:
        params = json.loads(text)
    except ValueError as error:
        raise ac.AieditError(f"params: not valid JSON ({error})", "bad_params") from None
    if not isinstance(params, dict):
        raise ac.AieditError("params: must be a JSON object like {\"strength\": 0.8}",
                             "bad_params")
    return params


def plan_options(config, operation) -> dict:
    options = {"upscale_into": argument(config, "upscale-into", "new-image")}
    fps = ((operation.get("params_schema") or {}).get("properties") or {}).get("fps") or {}
    if fps.get("default"):
        options["default_fps"] = fps["default"]
    return options


def run_results(procedure, run_mode, image, drawables, config, data):
    try:
        client = host.make_client(argument(config, "server-url", ""),
                                  argument(config, "api-key", ""))
        anchor = host.anchor_layer(image, drawables)
        if run_mode == Gimp.RunMode.INTERACTIVE:
            import aiedit_dialog

            aiedit_dialog.offer_recovered(client, image, anchor, kept=True)
            Gimp.displays_flush()
        else:
            for entry, job in host.finished_earlier(client, kept=True):
                host.insert_recovered(client, image, anchor, entry, job, False)
        return succeed(procedure)
    except ac.AieditError as error:
        return fail(procedure, str(error))


def run_settings(procedure, run_mode, image, drawables, config, data):
    saved = host.load_settings()
    url = argument(config, "server-url", "") or saved.get("server_url") or ac.DEFAULT_URL
    key = argument(config, "api-key", "") or saved.get("api_key") or ""
    try:
        if run_mode == Gimp.RunMode.INTERACTIVE:
            import aiedit_dialog

            answer = aiedit_dialog.ask_settings(procedure, config, url, key)
            if answer is None:
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
            url, key = answer
        ac.Client(url, key)
        host.save_settings(server_url=url, api_key=key)
        if run_mode == Gimp.RunMode.INTERACTIVE:
            Gimp.message(connection_report(url, key))
        return succeed(procedure)
    except ac.AieditError as error:
        return fail(procedure, str(error))


def connection_report(url, key) -> str:
    try:
        client = ac.Client(url, key)
        health = client.health()
        client.operations()
    except ac.AieditError as error:
        return f"Saved. {error}"
    return f"Saved. Connected to aiedit {health.get('version', '')} at {url}."


if __name__ == "__main__":
    Gimp.main(AieditPlugIn.__gtype__, sys.argv)
