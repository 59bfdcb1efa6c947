"""The results browser of the aiedit GIMP plug-in (GTK, main thread only).

Every result of the jobs shown is a thumbnail. Clicking one previews it on the canvas (a layer
inserted as the result would be, hidden again when another is previewed), without deciding
anything; check boxes choose what to apply. "Apply" keeps the checked results as layers,
"Keep for later" leaves every unapplied result in the journal (the next run offers it again),
"Discard" forgets them. Nothing is dropped without one of those answers.
"""

import random
import threading

import aiedit_client as ac
import aiedit_gimp as host
import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from gi.repository import GdkPixbuf, Gimp, GimpUi, GLib, Gtk  # noqa: E402

RESPONSE_APPLY, RESPONSE_LATER, RESPONSE_DISCARD = 1, 2, 3
ANSWERS = {RESPONSE_APPLY: "apply", RESPONSE_DISCARD: "discard"}
THUMBNAIL = 128


class Item:
    """One result of one job: where it comes from, its pixels, its preview layer."""

    def __init__(self, pending: "Pending", result: ac.Result, pixels):
        self.pending, self.result, self.pixels = pending, result, pixels
        self.layers = []  # the preview's layers, once previewed
        self.check = None


class Pending:
    """A finished job whose results are not all applied yet."""

    def __init__(self, plan, outcome, entry=None):
        self.plan, self.outcome, self.entry = plan, outcome, entry or {}
        applied = set(self.entry.get("applied") or [])
        self.items = [Item(self, r, p) for r, p in outcome.images if r.index not in applied]

    @property
    def job_id(self) -> str:
        return self.outcome.job.get("id", "")


class Browser:
    def __init__(self, image, anchor, pendings: list, interactive: bool = True,
                 rerender=None):
        self.image, self.anchor, self.interactive = image, anchor, interactive
        self.pendings = [p for p in pendings if p.items]
        self.items = [item for p in self.pendings for item in p.items]
        self.previewed = None
        self.before = host.document_geometry(image) if host.image_alive(image) else {}
        self.dialog = None
        self.flow = None
        self.rerender = rerender if len(self.pendings) == 1 else None  # a host.ReRender
        self.rerender_button = None

    # -- the dialog

    def build(self):
        GimpUi.init("aiedit")
        count = len(self.items)
        self.dialog = Gtk.Dialog(title=f"aiedit results ({count})", modal=True)
        self.dialog.add_button("_Keep for later", RESPONSE_LATER)
        self.dialog.add_button("_Discard", RESPONSE_DISCARD)
        self.dialog.add_button("_Apply checked", RESPONSE_APPLY)
        self.dialog.set_default_response(RESPONSE_APPLY)
        area = self.dialog.get_content_area()
        area.pack_start(Gtk.Label(label="Click a result to preview it on the canvas; check the "
                                        "ones to keep as layers.", xalign=0.0, margin=6),
                        False, False, 0)
        flow = self.flow = Gtk.FlowBox(selection_mode=Gtk.SelectionMode.NONE,
                                       max_children_per_line=4, column_spacing=6,
                                       row_spacing=6, margin=6)
        for number, item in enumerate(self.items):
            flow.add(self._tile(number, item))
        if self.rerender is not None:
            row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6, margin=6)
            self.rerender_button = Gtk.Button.new_with_mnemonic("_Re-render with a new seed")
            self.rerender_button.set_tooltip_text(
                "Render the same request again with another seed, right away (a live session: "
                "the model stays loaded, nothing waits in the queue)")
            self.rerender_button.connect("clicked", lambda _b: self.rerender_in_background())
            row.pack_start(self.rerender_button, False, False, 0)
            row.pack_start(Gtk.Label(label="Re-rendered results are kept only by applying them",
                                     xalign=0.0), False, False, 0)
            area.pack_end(row, False, False, 0)
        scroller = Gtk.ScrolledWindow(min_content_height=min(2, 1 + count // 4) * 190,
                                      min_content_width=4 * (THUMBNAIL + 24))
        scroller.add(flow)
        area.pack_start(scroller, True, True, 0)
        self.dialog.show_all()
        return self.dialog

    def _tile(self, number: int, item: Item):
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=2)
        button = Gtk.Button(relief=Gtk.ReliefStyle.NONE)
        button.add(Gtk.Image.new_from_pixbuf(thumbnail(item.pixels)))
        button.set_tooltip_text("Preview on the canvas")
        button.connect("clicked", lambda _b: self.preview(number))
        box.pack_start(button, False, False, 0)
        seed = item.result.seed
        caption = host.layer_name(item.pending.plan.operation, "", seed)
        item.check = Gtk.CheckButton(label=caption)
        item.check.set_active(len(self.items) == 1)
        box.pack_start(item.check, False, False, 0)
        return box

    def run(self) -> str:
        """Show the dialog until answered; returns "apply", "later" or "discard"."""
        self.build()
        response = self.dialog.run()
        return self.finish(ANSWERS.get(response, "later"))

    # -- what the buttons do

    def rerender_now(self) -> int:
        """Render one more result in this thread and add it; returns its number."""
        return self._add(self.rerender.frame(random.randrange(2**32)))

    def rerender_in_background(self) -> None:
        """The re-render button: the frame renders in a worker thread (network only) and
        its thumbnail is added on the main loop when it arrives."""
        self.rerender_button.set_sensitive(False)
        self.rerender_button.set_label("Rendering…")
        seed = random.randrange(2**32)

        def work():
            try:
                made = self.rerender.frame(seed)
            except ac.AieditError as error:
                GLib.idle_add(self._rerendered, None, str(error))
                return
            GLib.idle_add(self._rerendered, made, "")

        threading.Thread(target=work, name="aiedit-rerender", daemon=True).start()

    def _rerendered(self, made, error: str) -> bool:
        self.rerender_button.set_sensitive(True)
        self.rerender_button.set_label("_Re-render with a new seed")
        if made is None:
            _warn(self.dialog, error)
        else:
            self._add(made)
        return False

    def _add(self, made) -> int:
        pending = self.pendings[0]
        pending.outcome.images.append(made)
        item = Item(pending, *made)
        pending.items.append(item)
        self.items.append(item)
        number = len(self.items) - 1
        if self.flow is not None:
            tile = self._tile(number, item)
            self.flow.add(tile)
            tile.show_all()
        return number

    def preview(self, number: int) -> None:
        """Show result ``number`` on the canvas, hiding the one shown before."""
        item = self.items[number]
        if self.previewed is not None:
            for layer in self.previewed.layers:
                layer.set_visible(False)
        if not item.layers:
            item.layers = host.insert_results(
                self.image, self.anchor, item.pending.plan, item.pending.outcome,
                self.interactive, "follow", chosen={item.result.index})
        for layer in item.layers:
            layer.set_visible(True)
        self.previewed = item
        Gimp.displays_flush()

    def check(self, number: int, active: bool = True) -> None:
        self.items[number].check.set_active(active)

    def finish(self, answer: str) -> str:
        """Apply the checked results (previewed ones stay, others are inserted), take the
        other previews away, and update the journal and history."""
        chosen = [item for item in self.items if answer == "apply" and item.check.get_active()]
        for item in self.items:
            if item in chosen:
                if not item.layers:
                    item.layers = host.insert_results(
                        self.image, self.anchor, item.pending.plan, item.pending.outcome,
                        self.interactive, "follow", chosen={item.result.index})
                for layer in item.layers:
                    layer.set_visible(True)
            else:
                for layer in item.layers:
                    self.image.remove_layer(layer)
                item.layers = []
        if not chosen:
            host.undo_growth(self.image, self.before)
        for pending in self.pendings:
            self._settle(pending, answer, [i for i in pending.items if i in chosen])
        if self.rerender is not None:
            self.rerender.close()
        if self.dialog is not None:
            self.dialog.destroy()
        Gimp.displays_flush()
        return answer

    def _settle(self, pending: Pending, answer: str, chosen: list) -> None:
        journal = host.journal()
        # re-rendered results are no job of the server's: only the job's own are kept
        chosen = [i for i in chosen if i.result.index < host.RERENDER_INDEX]
        left = [i for i in pending.items
                if i not in chosen and i.result.index < host.RERENDER_INDEX]
        if answer == "discard" or not left:
            host.forget(pending.job_id)
            host.set_history_state(pending.job_id, "discarded" if answer == "discard"
                                   and not chosen else "applied")
            return
        applied = sorted(set(pending.entry.get("applied") or [])
                         | {i.result.index for i in chosen})
        entry = next((e for e in journal.entries() if e["job_id"] == pending.job_id), None)
        if entry is not None:
            entry = dict(entry, applied=applied, kept=True)
            job_id = entry.pop("job_id")
            entry.pop("added_at", None)
            journal.add(job_id, **entry)
        host.set_history_state(pending.job_id, "kept for later" if not chosen
                               else f"applied {len(applied)}, kept {len(left)}")


def thumbnail(pixels) -> "GdkPixbuf.Pixbuf":
    """A thumbnail of 8- or 16-bit RGBA pixels (the high bytes of 16-bit ones)."""
    data = pixels.data
    if host.pixels_depth(pixels) == 16:
        data = data[1::2]
    width, height = pixels.width, pixels.height
    pixbuf = GdkPixbuf.Pixbuf.new_from_bytes(GLib.Bytes.new(data), GdkPixbuf.Colorspace.RGB,
                                             True, 8, width, height, width * 4)
    scale = min(1.0, THUMBNAIL / max(width, height))
    return pixbuf.scale_simple(max(1, round(width * scale)), max(1, round(height * scale)),
                               GdkPixbuf.InterpType.BILINEAR)


def _warn(parent, text: str) -> None:
    box = Gtk.MessageDialog(transient_for=parent, modal=True,
                            message_type=Gtk.MessageType.WARNING,
                            buttons=Gtk.ButtonsType.OK, text=text)
    box.run()
    box.destroy()


def browse(image, anchor, pendings: list, rerender=None) -> str:
    """Offer the results of ``pendings`` (``Pending`` jobs), with a re-render button when
    ``rerender`` (a ``host.ReRender`` of the one job) is given; returns the answer."""
    browser = Browser(image, anchor, pendings, rerender=rerender)
    if not browser.items:
        return "apply"
    return browser.run()
