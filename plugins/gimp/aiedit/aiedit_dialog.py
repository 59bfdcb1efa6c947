"""Interactive dialogs of the aiedit GIMP plug-in (GimpUi/Gtk; main thread only)."""

import json

import aiedit_client as ac
import aiedit_gimp as host
import gi

gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
from gi.repository import GimpUi, Gtk  # noqa: E402

RESPONSE_INSERT, RESPONSE_DISCARD, RESPONSE_LATER = 1, 2, 3
PLACEMENT_ANSWERS = {RESPONSE_INSERT: "old-position", RESPONSE_DISCARD: "discard"}


def ask_placement(message: str, closed: bool) -> str:
    """The image changed under a job: "old-position", "discard" or "stop" (keep for later)."""
    GimpUi.init("aiedit")
    box = Gtk.MessageDialog(modal=True, message_type=Gtk.MessageType.WARNING, text=message)
    box.add_button("_Keep for later", RESPONSE_LATER)
    box.add_button("_Discard", RESPONSE_DISCARD)
    box.add_button("Open in a _new image" if closed else "_Place at the old position",
                   RESPONSE_INSERT)
    response = box.run()
    box.destroy()
    return PLACEMENT_ANSWERS.get(response, "stop")


def ask(procedure, config, operation: dict) -> bool:
    """The operation's dialog: procedure arguments plus fields built from the server's
    parameter schema and model list. Writes the answers into ``config``; False on cancel."""
    GimpUi.init("aiedit")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, operation.get("title") or "aiedit")
    shown = [name for name in ("prompt", "source", "context-margin", "upscale-into")
             if config.find_property(name) is not None
             and (name != "prompt" or "prompt" in host._schema_properties(operation))]
    dialog.fill(shown)
    fields = host.param_fields(operation, _previous_params(config))
    grid, read_values, read_model = _fields_grid(operation, fields, config.get_property("model"))
    dialog.get_content_area().pack_start(grid, False, False, 6)
    grid.show_all()
    while True:
        if not dialog.run():
            dialog.destroy()
            return False
        try:
            params = host.collect_params(fields, read_values())
        except ac.AieditError as error:
            _message(dialog, str(error))
            continue
        config.set_property("params", json.dumps(params))
        config.set_property("model", read_model())
        dialog.destroy()
        return True


def _previous_params(config) -> dict:
    try:
        value = json.loads(config.get_property("params") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _fields_grid(operation: dict, fields: list, model: str):
    grid = Gtk.Grid(row_spacing=6, column_spacing=12, margin=6)
    models = operation.get("models") or []
    model_combo = Gtk.ComboBoxText()
    model_combo.append("", f"Server default ({operation.get('default_model') or '?'})")
    for m in models:
        note = "" if m.get("installed", True) else " (downloads on first use)"
        model_combo.append(m["id"], (m.get("name") or m["id"]) + note)
    if not model_combo.set_active_id(model or ""):
        model_combo.set_active_id("")
    _row(grid, 0, "Model", model_combo, "Which model runs the operation")
    widgets = {}
    for row, f in enumerate(fields, start=1):
        widgets[f["name"]] = widget = _widget(f)
        _row(grid, row, f["label"], widget, f["help"])

    def read_values():
        return {name: _value(w) for name, w in widgets.items()}

    return grid, read_values, lambda: model_combo.get_active_id() or ""


def _row(grid, row, label, widget, tooltip):
    caption = Gtk.Label(label=label, xalign=0.0)
    grid.attach(caption, 0, row, 1, 1)
    grid.attach(widget, 1, row, 1, 1)
    if tooltip:
        widget.set_tooltip_text(tooltip)


def _widget(f: dict):
    if f["kind"] == "choice":
        combo = Gtk.ComboBoxText()
        for choice in f["choices"]:
            combo.append(choice, choice.replace("_", " "))
        combo.set_active_id(str(f["value"]) if f["value"] is not None else f["choices"][0])
        return combo
    if f["kind"] == "toggle":
        check = Gtk.CheckButton()
        check.set_active(bool(f["value"]))
        return check
    entry = Gtk.Entry(hexpand=True)
    entry.set_text("" if f["value"] is None else str(f["value"]))
    if f["kind"] == "number" and f["optional"]:
        entry.set_placeholder_text("empty: random / server default")
    return entry


def _value(widget):
    if isinstance(widget, Gtk.ComboBoxText):
        return widget.get_active_id()
    if isinstance(widget, Gtk.CheckButton):
        return widget.get_active()
    return widget.get_text()


def _message(parent, text):
    box = Gtk.MessageDialog(transient_for=parent, modal=True,
                            message_type=Gtk.MessageType.WARNING,
                            buttons=Gtk.ButtonsType.OK, text=text)
    box.run()
    box.destroy()


def ask_settings(procedure, config, url: str, key: str):
    """Server URL and API key; returns (url, key) or None on cancel."""
    GimpUi.init("aiedit")
    config.set_property("server-url", url)
    config.set_property("api-key", key)
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "aiedit settings")
    dialog.fill(["server-url", "api-key"])
    ok = dialog.run()
    answer = (config.get_property("server-url").strip(), config.get_property("api-key").strip())
    dialog.destroy()
    return answer if ok else None


def offer_recovered(client: ac.Client, image, anchor) -> None:
    """Offer the results of jobs that finished after an earlier run was closed."""
    found = host.finished_earlier(client)
    if not found:
        return
    GimpUi.init("aiedit")
    names = ", ".join(host.layer_name(e["operation"], e.get("prompt", ""), None)
                      for e, _ in found)
    box = Gtk.MessageDialog(modal=True, message_type=Gtk.MessageType.QUESTION,
                            text=f"{len(found)} aiedit job(s) finished after the plug-in was "
                                 f"closed: {names}. Insert the results as new layers?")
    box.add_button("_Later", RESPONSE_LATER)
    box.add_button("_Discard", RESPONSE_DISCARD)
    box.add_button("_Insert", RESPONSE_INSERT)
    response = box.run()
    box.destroy()
    for entry, job in found:
        if response == RESPONSE_INSERT:
            try:
                host.insert_recovered(client, image, anchor, entry, job, interactive=True)
            except host.ImageChanged as change:
                placement = ask_placement(str(change), change.closed)
                if placement != "stop":
                    host.insert_recovered(client, image, anchor, entry, job, True, placement)
        elif response == RESPONSE_DISCARD:
            host.journal().remove(entry["job_id"])
