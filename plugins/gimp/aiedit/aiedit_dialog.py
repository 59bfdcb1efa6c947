"""Interactive dialogs of the aiedit GIMP plug-in (GimpUi/Gtk; main thread only)."""

import json

import aiedit_client as ac
import aiedit_gimp as host
import gi

gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
from gi.repository import Gimp, GimpUi, Gtk  # noqa: E402

RESPONSE_INSERT, RESPONSE_DISCARD, RESPONSE_LATER = 1, 2, 3
PLACEMENT_ANSWERS = {RESPONSE_INSERT: "old-position", RESPONSE_DISCARD: "discard"}
OPEN = {}  # the operation dialog while it is open: dialog, form, history


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


def ask(procedure, config, operation: dict, image=None, client=None) -> bool:
    """The operation's dialog: procedure arguments plus fields built from the server's
    parameter schema and model list (spin buttons within the schema's bounds, combo boxes for
    choices), filled with the last values used for this operation, and a list of earlier jobs
    whose settings can be used again. Writes the answers into ``config``; False on cancel."""
    GimpUi.init("aiedit")
    op_id = operation["id"]
    last = host.load_last_values(op_id)
    given = _previous_params(config)
    previous = given or last.get("params") or {}
    if not config.get_property("model") and last.get("model"):
        config.set_property("model", last["model"])
    if config.find_property("prompt") is not None and not config.get_property("prompt") \
            and last.get("prompt"):
        config.set_property("prompt", last["prompt"])
    dialog = GimpUi.ProcedureDialog.new(procedure, config, operation.get("title") or "aiedit")
    shown = [name for name in ("prompt", "source", "context-margin", "upscale-into")
             if config.find_property(name) is not None
             and (name != "prompt" or "prompt" in host._schema_properties(operation))]
    dialog.fill(shown)
    fields = host.param_fields(operation, previous)
    form = Form(operation, fields, config.get_property("model"))
    history = _history_row(op_id, form, config)
    if history is not None:
        dialog.get_content_area().pack_start(history, False, False, 6)
        history.show_all()
    dialog.get_content_area().pack_start(form.grid, False, False, 6)
    form.grid.show_all()
    creative = None
    if config.find_property("controls") is not None and client is not None:
        creative = Creative(operation, image, client, last, previous)
        dialog.get_content_area().pack_start(creative.box, False, False, 6)
        creative.box.show_all()
    OPEN.update(dialog=dialog, form=form, history=history, creative=creative)  # for tests
    while True:
        if not dialog.run():
            dialog.destroy()
            return False
        try:
            params = host.collect_params(fields, form.values())
        except ac.AieditError as error:
            _message(dialog, str(error))
            continue
        last_values = {"model": form.model(), "params": params}
        if creative is not None:
            params.update(creative.params())
            config.set_property("style", creative.style())
            config.set_property("controls", json.dumps(creative.controls()))
            last_values.update(params=params, style=creative.style(),
                               controls=creative.controls(by_name=True))
        config.set_property("params", json.dumps(params))
        config.set_property("model", form.model())
        last_values["prompt"] = (config.get_property("prompt")
                                 if config.find_property("prompt") else "")
        host.save_last_values(op_id, last_values)
        dialog.destroy()
        return True


def _previous_params(config) -> dict:
    try:
        value = json.loads(config.get_property("params") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _history_row(op_id: str, form, config):
    """"Settings of an earlier job": picking one fills the form (and the prompt) with them."""
    entries = [e for e in host.history() if e.get("operation") == op_id]
    if not entries:
        return None
    box = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=12, margin=6)
    box.pack_start(Gtk.Label(label="Use settings again", xalign=0.0), False, False, 0)
    combo = Gtk.ComboBoxText(hexpand=True)
    combo.append("", "—")
    for number, entry in enumerate(reversed(entries)):
        combo.append(str(len(entries) - 1 - number), host.history_label(entry))
    combo.set_active_id("")
    combo.set_tooltip_text("The prompt, model and parameters of a job of this session; the "
                           "seed is the one its first result was made with")

    def chosen(widget):
        if not widget.get_active_id():
            return
        entry = entries[int(widget.get_active_id())]
        form.set_values(host.settings_again(entry))
        form.set_model(entry.get("model") or "")
        if config.find_property("prompt") is not None:
            config.set_property("prompt", entry.get("prompt") or "")

    combo.connect("changed", chosen)
    box.pack_start(combo, True, True, 0)
    box.combo = combo
    return box


class Form:
    """The model combo and one widget per schema parameter."""

    def __init__(self, operation: dict, fields: list, model: str):
        self.grid = Gtk.Grid(row_spacing=6, column_spacing=12, margin=6)
        self.model_combo = Gtk.ComboBoxText()
        self.model_combo.append("", f"Server default ({operation.get('default_model') or '?'})")
        for m in operation.get("models") or []:
            note = "" if m.get("installed", True) else " (downloads on first use)"
            self.model_combo.append(m["id"], (m.get("name") or m["id"]) + note)
        self.set_model(model)
        _row(self.grid, 0, "Model", self.model_combo, "Which model runs the operation")
        self.widgets = {}
        for row, f in enumerate(fields, start=1):
            self.widgets[f["name"]] = widget = FieldWidget(f)
            _row(self.grid, row, f["label"], widget.widget, f["help"])

    def values(self) -> dict:
        return {name: w.get() for name, w in self.widgets.items()}

    def set_values(self, params: dict) -> None:
        for name, widget in self.widgets.items():
            if name in params:
                widget.set(params[name])
            else:
                widget.set(widget.field.get("default"))

    def model(self) -> str:
        return self.model_combo.get_active_id() or ""

    def set_model(self, model: str) -> None:
        if not self.model_combo.set_active_id(model or ""):
            self.model_combo.set_active_id("")


class Creative:
    """Style, LoRAs with weights and control layers (kind, layer, strength, picture or map),
    for the operations whose schema takes them."""

    LORA_ROWS = 2
    CONTROL_ROWS = 3

    def __init__(self, operation: dict, image, client: ac.Client, last: dict, previous: dict):
        self.image = image
        props = host._schema_properties(operation)
        self.box = Gtk.Grid(row_spacing=6, column_spacing=8, margin=6)
        self.box.attach(Gtk.Label(label="<b>Creative control</b>", use_markup=True,
                                  xalign=0.0), 0, 0, 4, 1)
        self.style_combo = Gtk.ComboBoxText()
        self.style_combo.append("", "No style")
        for style in host.fetch_styles(client, operation["id"]):
            self.style_combo.append(style["id"], style.get("name") or style["id"])
        if not self.style_combo.set_active_id(last.get("style") or ""):
            self.style_combo.set_active_id("")
        self.style_combo.set_tooltip_text("A style preset of the server: prompt template, "
                                          "negative prompt, LoRAs and defaults")
        self.box.attach(Gtk.Label(label="Style", xalign=0.0), 0, 1, 1, 1)
        self.box.attach(self.style_combo, 1, 1, 3, 1)
        row = 2
        self.loras = []
        if "loras" in props:
            choices = host.fetch_loras(client)
            given = list(previous.get("loras") or [])
            for number in range(self.LORA_ROWS):
                combo = Gtk.ComboBoxText()
                combo.append("", "No LoRA")
                for lora in choices:
                    base = f" ({lora['base']})" if lora.get("base") else ""
                    combo.append(lora["id"], (lora.get("name") or lora["id"]) + base)
                weight = _spin(-2.0, 2.0, 1.0, 0.05, 2)
                if number < len(given):
                    combo.set_active_id(given[number].get("id", ""))
                    weight.set_value(float(given[number].get("weight", 1.0)))
                else:
                    combo.set_active_id("")
                combo.set_tooltip_text("A LoRA for the model's base (SDXL, FLUX, ...)")
                weight.set_tooltip_text("LoRA weight: 0 = off, 1 = full, negative = opposite")
                self.box.attach(Gtk.Label(label=f"LoRA {number + 1}", xalign=0.0), 0, row, 1, 1)
                self.box.attach(combo, 1, row, 2, 1)
                self.box.attach(weight, 3, row, 1, 1)
                self.loras.append((combo, weight))
                row += 1
        self.controls_rows = []
        if "control" in props and image is not None:
            layers = host.all_layers(image)
            wanted = list(last.get("controls") or [])
            for number in range(self.CONTROL_ROWS):
                kind = Gtk.ComboBoxText()
                kind.append("", "No control")
                for name in host.CONTROL_KINDS:
                    kind.append(name, name.capitalize())
                layer = Gtk.ComboBoxText()
                for item in layers:
                    layer.append(str(item.get_id()), item.get_name())
                strength = _spin(0.0, 2.0, 1.0, 0.05, 2)
                picture = Gtk.CheckButton(label="Picture")
                picture.set_tooltip_text("The layer is a picture to turn into the control map "
                                         "(else it is the map itself)")
                kind.set_active_id("")
                if layers:
                    layer.set_active(0)
                if number < len(wanted):
                    saved = wanted[number]
                    kind.set_active_id(saved.get("kind", ""))
                    match = [i for i in layers if i.get_name() == saved.get("layer")]
                    if match:
                        layer.set_active_id(str(match[0].get_id()))
                    strength.set_value(float(saved.get("strength", 1.0)))
                    picture.set_active(bool(saved.get("preprocess")))
                kind.set_tooltip_text("What the layer steers: edges, depth, pose, a scribble, or "
                                      "a reference picture")
                self.box.attach(kind, 0, row, 1, 1)
                self.box.attach(layer, 1, row, 1, 1)
                self.box.attach(strength, 2, row, 1, 1)
                self.box.attach(picture, 3, row, 1, 1)
                self.controls_rows.append((kind, layer, strength, picture))
                row += 1

    def style(self) -> str:
        return self.style_combo.get_active_id() or ""

    def params(self) -> dict:
        if not self.loras:
            return {}
        return {"loras": [{"id": combo.get_active_id(), "weight": round(weight.get_value(), 2)}
                          for combo, weight in self.loras if combo.get_active_id()]}

    def controls(self, by_name: bool = False) -> list:
        out = []
        for kind, layer, strength, picture in self.controls_rows:
            if not kind.get_active_id() or not layer.get_active_id():
                continue
            ref = int(layer.get_active_id())
            if by_name:
                ref = Gimp.Item.get_by_id(ref).get_name()
            out.append({"layer": ref, "kind": kind.get_active_id(),
                        "strength": round(strength.get_value(), 2),
                        "preprocess": picture.get_active()})
        return out


def _spin(low, high, value, step, digits):
    adjustment = Gtk.Adjustment(value=value, lower=low, upper=high, step_increment=step,
                                page_increment=step * 10)
    return Gtk.SpinButton(adjustment=adjustment, digits=digits, numeric=True)


def _row(grid, row, label, widget, tooltip):
    caption = Gtk.Label(label=label, xalign=0.0)
    grid.attach(caption, 0, row, 1, 1)
    grid.attach(widget, 1, row, 1, 1)
    if tooltip:
        widget.set_tooltip_text(tooltip)


NUMBER_LIMIT = 1e12


class FieldWidget:
    """One parameter: a combo box for choices, a check box for toggles, a spin button within
    the schema's bounds for numbers (with a "Random"/"Default" check box when the number may
    be left to the server), a text entry otherwise."""

    def __init__(self, f: dict):
        self.field = f
        self.auto = None
        if f["kind"] == "choice":
            self.widget = self.input = Gtk.ComboBoxText()
            for choice in f["choices"]:
                self.input.append(choice, choice.replace("_", " "))
        elif f["kind"] == "toggle":
            self.widget = self.input = Gtk.CheckButton()
        elif f["kind"] == "number":
            low = f["minimum"] if f["minimum"] is not None else -NUMBER_LIMIT
            high = f["maximum"] if f["maximum"] is not None else NUMBER_LIMIT
            digits = 0 if f["integer"] else 2
            step = 1 if f["integer"] else (0.05 if high - low <= 2 else 0.5)
            adjustment = Gtk.Adjustment(value=low, lower=low, upper=high, step_increment=step,
                                        page_increment=step * 10)
            self.input = Gtk.SpinButton(adjustment=adjustment, digits=digits, numeric=True,
                                        hexpand=True)
            self.widget = self.input
            if f["optional"]:
                self.widget = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
                self.auto = Gtk.CheckButton(
                    label="Random" if f["name"].endswith("seed") else "Default")
                self.auto.connect("toggled",
                                  lambda check: self.input.set_sensitive(not check.get_active()))
                self.widget.pack_start(self.input, True, True, 0)
                self.widget.pack_start(self.auto, False, False, 0)
        else:
            self.widget = self.input = Gtk.Entry(hexpand=True)
        self.set(f["value"])

    def set(self, value) -> None:
        f = self.field
        if f["kind"] == "choice":
            self.input.set_active_id(str(value) if value is not None else f["choices"][0])
        elif f["kind"] == "toggle":
            self.input.set_active(bool(value))
        elif f["kind"] == "number":
            if self.auto is not None:
                self.auto.set_active(value is None)
                self.input.set_sensitive(value is not None)
            if value is not None:
                self.input.set_value(float(value))
        else:
            self.input.set_text("" if value is None else str(value))

    def get(self):
        f = self.field
        if f["kind"] == "choice":
            return self.input.get_active_id()
        if f["kind"] == "toggle":
            return self.input.get_active()
        if f["kind"] == "number":
            if self.auto is not None and self.auto.get_active():
                return None
            self.input.update()
            return self.input.get_value_as_int() if f["integer"] else \
                round(self.input.get_value(), self.input.get_digits())
        return self.input.get_text()


class PreviewWindow:
    """Step previews of a running diffusion job, in a small window opened with the first one
    (GIMP's own progress bar has no room for a picture)."""

    def __init__(self, title: str):
        self.title = title
        self.window = None
        self.image = None
        self.caption = None
        self.shown = []  # steps shown, for scripted tests

    def show_preview(self, preview) -> None:
        from gi.repository import GdkPixbuf

        loader = GdkPixbuf.PixbufLoader.new_with_type("png")
        loader.write(preview.png)
        loader.close()
        pixbuf = loader.get_pixbuf()
        if self.window is None:
            GimpUi.init("aiedit")
            self.window = Gtk.Window(title=f"{self.title} — preview")
            box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6, margin=6)
            self.image = Gtk.Image()
            self.caption = Gtk.Label(xalign=0.0)
            box.pack_start(self.image, True, True, 0)
            box.pack_start(self.caption, False, False, 0)
            self.window.add(box)
            self.window.show_all()
            OPEN.update(preview=self)
        self.image.set_from_pixbuf(pixbuf)
        self.caption.set_text(f"Step {preview.step}")
        self.shown.append((preview.step, pixbuf.get_width(), pixbuf.get_height()))
        self.pump()

    def pump(self) -> None:
        if self.window is not None:
            while Gtk.events_pending():
                Gtk.main_iteration_do(False)

    def close(self) -> None:
        window, self.window = self.window, None
        if window is not None:
            window.destroy()
            while Gtk.events_pending():
                Gtk.main_iteration_do(False)


def _message(parent, text):
    box = Gtk.MessageDialog(transient_for=parent, modal=True,
                            message_type=Gtk.MessageType.WARNING,
                            buttons=Gtk.ButtonsType.OK, text=text)
    box.run()
    box.destroy()


ACCOUNT_PAGES = (("keys", "_Get a key…", "Open the server's page for API keys in your browser"),
                 ("credits", "_Buy credits…", "Open the server's page for credits in your "
                                              "browser"))


def ask_settings(procedure, config, url: str, key: str):
    """Server URL and API key, with "Get a key" and "Buy credits" opening the server's
    account pages; returns (url, key) or None on cancel."""
    GimpUi.init("aiedit")
    config.set_property("server-url", url)
    config.set_property("api-key", key)
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "aiedit settings")
    dialog.fill(["server-url", "api-key"])
    buttons = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6, margin=6)
    for page, label, tip in ACCOUNT_PAGES:
        button = Gtk.Button.new_with_mnemonic(label)
        button.set_tooltip_text(tip)
        button.connect("clicked", lambda _b, page=page: open_account_page(
            dialog, config.get_property("server-url").strip() or url, page))
        buttons.pack_start(button, False, False, 0)
    dialog.get_content_area().pack_start(buttons, False, False, 0)
    buttons.show_all()
    OPEN.update(dialog=dialog, account_buttons=buttons)
    ok = dialog.run()
    answer = (config.get_property("server-url").strip(), config.get_property("api-key").strip())
    dialog.destroy()
    return answer if ok else None


def open_account_page(parent, server_url: str, page: str) -> str:
    """Open ``/account/<page>`` of the server in the browser; returns the address."""
    try:
        address = host.account_url(server_url, page)
    except ac.AieditError as error:
        _message(parent, str(error))
        return ""
    open_uri(address)
    return address


def open_uri(address: str) -> None:
    from gi.repository import Gio

    try:
        Gio.AppInfo.launch_default_for_uri(address, None)
    except Exception:  # noqa: BLE001 - no desktop handler: the standard library's guess
        import webbrowser

        webbrowser.open(address)


def offer_recovered(client: ac.Client, image, anchor, kept: bool = False) -> None:
    """Offer the results of jobs that finished after an earlier run was closed (with
    ``kept``, also those kept for later) in the results browser; jobs whose image changed
    meanwhile ask first."""
    import aiedit_browser

    found = host.finished_earlier(client, kept)
    by_image = {}
    for entry, job in found:
        target = host.recovered_target(image, entry)
        plan = host.recovered_plan(entry)
        outcome = host.Outcome(job, host.download_images(client, job))
        try:
            host.follow_geometry(target, plan.geometry)
        except host.ImageChanged as change:
            GimpUi.init("aiedit")
            placement = ask_placement(f"{host.layer_name(plan.operation, plan.prompt, None)}: "
                                      f"{change}", change.closed)
            if placement != "stop":
                left = {r.index for r, _ in outcome.images} - set(entry.get("applied") or [])
                host.insert_results(target, None, plan, outcome, True, placement, chosen=left)
                host.forget(entry["job_id"])
            continue
        key = target.get_id()
        by_image.setdefault(key, (target, anchor if target is image else None, []))
        by_image[key][2].append(aiedit_browser.Pending(plan, outcome, entry))
    for target, target_anchor, pendings in by_image.values():
        aiedit_browser.browse(target, target_anchor, pendings)
