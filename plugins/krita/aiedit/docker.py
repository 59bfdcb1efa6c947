"""The aiedit docker: server connection, operation and parameters, Generate / Cancel with
progress, and a strip of result thumbnails to Apply (as layers) or Discard."""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass

from krita import DockWidget, Krita
from PyQt5.QtCore import QSize, QStandardPaths, Qt, QTimer, QUrl
from PyQt5.QtGui import QDesktopServices, QIcon, QImage, QPixmap
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from . import host, jobs, live, scripting, session, settings
from .aiedit_client import (
    AieditError,
    Client,
    ConnectionFailed,
    Result,
    describe_progress,
    progress_fraction,
)
from .params_form import ParamsForm
from .worker import CallThread, JobThread

DOCKER_ID = "aiedit_docker"
THUMB = 96
OWN_WIDGETS = ("prompt", "strength", "loras", "control")
LIVE_OPERATIONS = ("generate", "inpaint")
LORA_ROWS = 2
SOURCES = ((host.SOURCE_IMAGE, "Visible image"), (host.SOURCE_LAYER, "Active layer"))

ACCOUNT_PAGES = {"keys": "/account/keys", "credits": "/account/credits"}

_live = []


def data_folder() -> str:
    """Where the journal and history live: ``AIEDIT_KRITA_DATA`` or Krita's data folder."""
    return os.environ.get("AIEDIT_KRITA_DATA") or os.path.join(
        QStandardPaths.writableLocation(QStandardPaths.AppDataLocation), "aiedit")


def live_dockers() -> list:
    """The aiedit dockers that exist now (one per Krita window)."""
    alive = [ref() for ref in _live]
    return [d for d in alive if d is not None]


@dataclass
class Pending:
    """A result shown in the strip, not yet applied or discarded."""

    document: object
    spec: jobs.JobSpec
    outcome: jobs.Outcome
    result: object = None
    pixels: object = None

    @property
    def job_id(self) -> str:
        return str(self.outcome.job.get("id") or "")


class AieditDocker(DockWidget):
    """The panel. Network work runs in ``worker`` threads; Krita is touched only here, on the
    GUI thread, when a job starts (reading) and when a result is applied (writing)."""

    def __init__(self):
        super().__init__()
        self.setWindowTitle("aiedit")
        self.saved = settings.load()
        self.client: Client | None = None
        self.operations: list = []
        self.form: ParamsForm | None = None
        self.job_thread: JobThread | None = None
        self.job_document = None
        self.call_thread: CallThread | None = None
        self.pending: list[Pending] = []
        self.resuming: dict = {}  # job id -> JobThread for jobs found in the journal
        folder = data_folder()
        self.journal = session.Journal(folder)
        self.history = session.History(folder)
        self._build()
        _live.append(weakref.ref(self))
        self.connect_server()

    def canvasChanged(self, canvas):  # noqa: N802 - Krita's name
        pass

    # -- layout

    def _build(self) -> None:
        root = QWidget(self)
        layout = QVBoxLayout(root)
        layout.addWidget(self._server_box())
        layout.addLayout(self._operation_form())
        self.prompt = QPlainTextEdit()
        self.prompt.setObjectName("prompt")
        self.prompt.setPlaceholderText("Prompt: what to draw or change")
        self.prompt.setMaximumHeight(70)
        layout.addWidget(self.prompt)
        layout.addLayout(self._strength_row())
        self.params_box = QGroupBox("Parameters")
        self.params_layout = QVBoxLayout(self.params_box)
        layout.addWidget(self.params_box)
        layout.addWidget(self._creative_box())
        layout.addLayout(self._run_row())
        layout.addLayout(self._live_row())
        self.progress = QProgressBar()
        self.progress.setObjectName("progress")
        self.progress.setRange(0, 1000)
        self.progress.setFormat("Idle")
        self.progress.setTextVisible(True)
        layout.addWidget(self.progress)
        self.step_preview = QLabel()
        self.step_preview.setObjectName("step_preview")
        self.step_preview.setAlignment(Qt.AlignCenter)
        self.step_preview.setToolTip("The job's latest step, while it denoises")
        self.step_preview.setVisible(False)
        layout.addWidget(self.step_preview)
        layout.addWidget(self._results_strip())
        layout.addLayout(self._results_row())
        layout.addLayout(self._history_row())
        layout.addStretch(1)
        self.setWidget(root)

    def _server_box(self) -> QGroupBox:
        box = QGroupBox("Server")
        form = QFormLayout(box)
        self.url_edit = QLineEdit(self.saved.server_url)
        self.key_edit = QLineEdit(self.saved.api_key)
        self.key_edit.setEchoMode(QLineEdit.Password)
        self.key_edit.setPlaceholderText("not needed on this computer")
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self.connect_server)
        self.status = QLabel("Not connected")
        self.status.setObjectName("status")
        self.status.setWordWrap(True)
        account = QHBoxLayout()
        self.get_key_button = QPushButton("Get a key")
        self.get_key_button.setToolTip("Open the server's page for API keys in the browser")
        self.get_key_button.clicked.connect(lambda: self.open_account_page("keys"))
        self.buy_button = QPushButton("Buy credits")
        self.buy_button.setToolTip("Open the server's page for credits in the browser")
        self.buy_button.clicked.connect(lambda: self.open_account_page("credits"))
        account.addWidget(self.get_key_button)
        account.addWidget(self.buy_button)
        form.addRow("URL", self.url_edit)
        form.addRow("API key", self.key_edit)
        form.addRow("Account", account)
        form.addRow(self.connect_button, self.status)
        return box

    def account_url(self, page: str) -> str:
        """The server's account page (``keys`` or ``credits``) for the URL in the form."""
        base = (self.url_edit.text().strip() or self.saved.server_url).rstrip("/")
        return base + ACCOUNT_PAGES[page]

    def open_account_page(self, page: str) -> bool:
        return QDesktopServices.openUrl(QUrl(self.account_url(page)))

    def _operation_form(self) -> QFormLayout:
        form = QFormLayout()
        self.operation_combo = QComboBox()
        self.operation_combo.setObjectName("operation")
        self.operation_combo.currentIndexChanged.connect(self._operation_changed)
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("model")
        self.source_combo = QComboBox()
        for key, label in SOURCES:
            self.source_combo.addItem(label, key)
        self.source_combo.setCurrentIndex(max(0, self.source_combo.findData(self.saved.source)))
        form.addRow("Operation", self.operation_combo)
        form.addRow("Model", self.model_combo)
        form.addRow("Read from", self.source_combo)
        return form

    def _creative_box(self) -> QGroupBox:
        """Style, LoRAs and control layers (for operations whose schema takes them)."""
        self.styles: list = []
        self.loras_available: list = []
        self.creative_box = QGroupBox("Style, LoRAs and control layers")
        form = QFormLayout(self.creative_box)
        self.style_combo = QComboBox()
        self.style_combo.setObjectName("style")
        form.addRow("Style", self.style_combo)
        self.lora_rows = []
        for index in range(LORA_ROWS):
            combo, weight = QComboBox(), QDoubleSpinBox()
            combo.setObjectName(f"lora{index}")
            weight.setObjectName(f"lora_weight{index}")
            weight.setRange(-2.0, 2.0)
            weight.setSingleStep(0.1)
            weight.setValue(1.0)
            row = QHBoxLayout()
            row.addWidget(combo, 3)
            row.addWidget(weight, 1)
            form.addRow(f"LoRA {index + 1}", row)
            self.lora_rows.append((combo, weight))
        self.control_rows: list = []
        self.controls_layout = QVBoxLayout()
        form.addRow(self.controls_layout)
        self.add_control_button = QPushButton("Add control layer")
        self.add_control_button.setObjectName("add_control")
        self.add_control_button.setToolTip("Steer the model with a layer: a sketch, line art, "
                                           "edges, depth, a pose, or a reference picture")
        self.add_control_button.clicked.connect(lambda: self.add_control())
        form.addRow(self.add_control_button)
        self.creative_box.setVisible(False)
        return self.creative_box

    def add_control(self, layer: str = "", kind: str = "scribble", strength: float = 1.0):
        """A control row: which layer, which kind, how strongly (0-2)."""
        layers, kinds, power = QComboBox(), QComboBox(), QDoubleSpinBox()
        doc = Krita.instance().activeDocument()
        names = [n.name() for n in doc.topLevelNodes() if n.type().endswith("layer")
                 and n.name() not in host.PREVIEW_NAMES] if doc is not None else []
        for name in reversed(names):
            layers.addItem(name)
        layers.setCurrentIndex(max(0, layers.findText(layer)))
        for option in host.CONTROL_KINDS:
            kinds.addItem(option)
        kinds.setCurrentIndex(max(0, kinds.findText(kind)))
        power.setRange(0.0, 2.0)
        power.setSingleStep(0.1)
        power.setValue(strength)
        remove = QPushButton("\u2715")
        remove.setToolTip("Remove this control layer")
        row = QHBoxLayout()
        for widget, stretch in ((layers, 3), (kinds, 2), (power, 1), (remove, 0)):
            row.addWidget(widget, stretch)
        entry = (row, layers, kinds, power)
        remove.clicked.connect(lambda: self._remove_control(entry))
        self.controls_layout.addLayout(row)
        self.control_rows.append(entry)
        return entry

    def _remove_control(self, entry) -> None:
        row = entry[0]
        while row.count():
            widget = row.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.controls_layout.removeItem(row)
        self.control_rows.remove(entry)

    def controls(self) -> list:
        """The control rows as ``aiedit.run`` takes them."""
        return [{"layer": layers.currentText(), "kind": kinds.currentText(),
                 "strength": round(power.value(), 2)}
                for _row, layers, kinds, power in self.control_rows if layers.currentText()]

    def style(self) -> str:
        return self.style_combo.currentData() or ""

    def loras(self) -> list:
        return [{"id": combo.currentData(), "weight": round(weight.value(), 2)}
                for combo, weight in self.lora_rows if combo.currentData()]

    def _fill_creative(self, op: dict) -> None:
        properties = jobs.schema_properties(op)
        styles = [st for st in self.styles if op["id"] in (st.get("operations") or [op["id"]])]
        self.style_combo.clear()
        self.style_combo.addItem("No style", "")
        for st in styles:
            self.style_combo.addItem(st.get("name") or st["id"], st["id"])
            self.style_combo.setItemData(self.style_combo.count() - 1,
                                         st.get("description") or "", Qt.ToolTipRole)
        for combo, _weight in self.lora_rows:
            combo.clear()
            combo.addItem("No LoRA", "")
            for lora in self.loras_available:
                label = lora.get("name") or lora["id"]
                if lora.get("base"):
                    label += f" ({lora['base']})"
                combo.addItem(label, lora["id"])
            combo.setEnabled("loras" in properties)
        self.add_control_button.setEnabled("control" in properties)
        self.creative_box.setVisible(bool(styles) or "loras" in properties
                                     or "control" in properties)

    def _strength_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.strength_label = QLabel("Strength")
        self.strength = QSlider(Qt.Horizontal)
        self.strength.setObjectName("strength")
        self.strength.setRange(0, 100)
        self.strength_value = QLabel()
        self.strength.valueChanged.connect(lambda v: self.strength_value.setText(f"{v}%"))
        self.strength.setValue(100)
        for widget in (self.strength_label, self.strength, self.strength_value):
            row.addWidget(widget)
        return row

    def _run_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("generate")
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.generate_button, 2)
        row.addWidget(self.cancel_button, 1)
        return row

    def _live_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.live_check = QCheckBox("Live")
        self.live_check.setObjectName("live")
        self.live_check.setToolTip("Re-render the selection (or the canvas) as you paint; "
                                   "prompt, strength and seed can change meanwhile")
        self.live_check.toggled.connect(self.set_live)
        self.live_apply_button = QPushButton("Apply live")
        self.live_apply_button.setObjectName("apply_live")
        self.live_apply_button.setToolTip("Copy the current live result into a new layer")
        self.live_apply_button.setEnabled(False)
        self.live_apply_button.clicked.connect(lambda: self.apply_live())
        row.addWidget(self.live_check)
        row.addWidget(self.live_apply_button)
        self.live_session = None
        self.live_thread = None
        self.live_last = None  # (capture, frame) shown in the live layer
        self.live_fingerprint = ""
        self.live_timer = QTimer(self)
        self.live_timer.timeout.connect(self.live_tick)
        return row

    def set_live(self, on: bool) -> None:
        """Live mode on: open a session (worker thread), then send frames on a timer."""
        if not on:
            self._stop_live()
            return
        op = self.current_operation()
        if self.client is None or op is None or op["id"] not in LIVE_OPERATIONS:
            self.live_check.setChecked(False)
            self._refuse("Live mode works with Generate and Inpaint on a connected server.")
            return
        client, model = self.client, self.model_combo.currentData() or ""
        params = {k: v for k, v in self.params().items() if k != "count"}
        thread = CallThread(lambda: live.LiveSession(client, op["id"], model, params), self)
        thread.done.connect(self._live_opened)
        thread.failed.connect(self._live_failed)
        self.live_opening = thread
        self._show_progress("Opening a live session…", 0.0)
        thread.start()

    def _live_opened(self, session) -> None:
        if not self.live_check.isChecked():
            CallThread(session.close, self).start()
            return
        self.live_session, self.live_fingerprint = session, ""
        self._show_progress(f"Live: {session.model}", 0.0)
        interval = int(self.saved.live_interval_ms or 700) if \
            str(self.saved.live_interval_ms).isdigit() else 700
        self.live_timer.start(max(100, interval))
        self.live_tick()

    def _live_failed(self, message: str) -> None:
        self.live_check.setChecked(False)
        self._refuse(message)

    def live_tick(self) -> bool:
        """Send the canvas if it (or the params) changed and no frame is on its way."""
        if self.live_session is None or self.live_thread is not None:
            return False
        doc = Krita.instance().activeDocument()
        op = self.current_operation()
        if doc is None or op is None:
            return False
        try:
            inputs = {**(op.get("inputs") or {}), "image": "required"}
            if inputs.get("mask") == "required":
                inputs["mask"] = "optional"  # without a selection, the whole canvas
            capture = host.read_capture(doc, {**op, "inputs": inputs}, margin=0)
        except host.HostError as error:
            self._refuse(str(error))
            return False
        params = {k: v for k, v in self.params().items() if k != "count"}
        if op["id"] == "generate":
            params.pop("width", None)
            params.pop("height", None)
        thread = _LiveFrameThread(self.live_session, capture, params, self.live_fingerprint,
                                  self)
        thread.done.connect(self._live_frame)
        thread.failed.connect(self._live_frame_failed)
        thread.finished.connect(thread.deleteLater)
        self.live_thread = thread
        thread.start()
        return True

    def _live_frame(self, answer) -> None:
        self.live_thread = None
        fingerprint, capture, frame = answer
        self.live_fingerprint = fingerprint
        if frame is None:
            return  # unchanged canvas, or superseded by a newer frame
        doc = host.find_document(capture.placement)
        if doc is None or not self.live_check.isChecked():
            return
        result = Result(0, "image", frame.pixels.width, frame.pixels.height, frame.x, frame.y,
                        frame.seed, "")
        try:
            host.show_preview(doc, capture, self.live_session.operation, result, frame.pixels,
                              name=host.LIVE_NAME)
        except host.HostError as error:
            self._refuse(str(error))
            return
        self.live_last = (capture, result, frame.pixels)
        self.live_apply_button.setEnabled(True)
        seed = f" · seed {frame.seed}" if frame.seed is not None else ""
        self._show_progress(f"Live: {self.live_session.model}{seed}", 1.0)

    def _live_frame_failed(self, message: str) -> None:
        self.live_thread = None
        self._refuse(message)

    def apply_live(self):
        """The current live result as a new layer (the live layer keeps updating)."""
        if self.live_last is None:
            return None
        capture, result, pixels = self.live_last
        doc = host.find_document(capture.placement)
        if doc is None:
            return self._refuse("The live result's document was closed.")
        operation = self.live_session.operation if self.live_session else "generate"
        name = host.layer_name(operation, str(self.params().get("prompt") or ""), result.seed,
                               self.live_session.model if self.live_session else "")
        try:
            return host.insert_image(doc, capture, operation, result, pixels, "live " + name)
        except host.HostError as error:
            return self._refuse(str(error))

    def _stop_live(self) -> None:
        self.live_timer.stop()
        session, self.live_session = self.live_session, None
        if session is not None:
            closer = CallThread(session.close, self)
            closer.finished.connect(closer.deleteLater)
            closer.start()
        for doc in Krita.instance().documents():
            host.remove_previews(doc, host.LIVE_NAME)
        self.live_last = None
        self.live_apply_button.setEnabled(False)

    def _results_strip(self) -> QListWidget:
        self.results = QListWidget()
        self.results.setObjectName("results")
        self.results.setViewMode(QListView.IconMode)
        self.results.setFlow(QListView.LeftToRight)
        self.results.setWrapping(False)
        self.results.setIconSize(QSize(THUMB, THUMB))
        self.results.setFixedHeight(THUMB + 36)
        self.results.setSelectionMode(QListWidget.ExtendedSelection)
        self.results.itemDoubleClicked.connect(lambda item: self.apply([item]))
        self.results.itemSelectionChanged.connect(self.update_preview)
        return self.results

    def _results_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.apply_button = QPushButton("Apply")
        self.apply_button.setObjectName("apply")
        self.apply_button.setToolTip("Insert the selected results (or all) as new layers")
        self.apply_button.clicked.connect(lambda: self.apply())
        self.discard_button = QPushButton("Discard")
        self.discard_button.setObjectName("discard")
        self.discard_button.clicked.connect(lambda: self.discard())
        self.preview_check = QCheckBox("Preview")
        self.preview_check.setObjectName("preview")
        self.preview_check.setToolTip("Show the selected result on the canvas without applying "
                                      "it (a layer named \u201c" + host.PREVIEW_NAME + "\u201d)")
        self.preview_check.setChecked(True)
        self.preview_check.toggled.connect(lambda _on: self.update_preview())
        row.addWidget(self.apply_button)
        row.addWidget(self.discard_button)
        row.addWidget(self.preview_check)
        return row

    def _history_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.history_combo = QComboBox()
        self.history_combo.setObjectName("history")
        self.history_combo.setToolTip("This session's jobs: operation, prompt, seeds")
        self.reuse_button = QPushButton("Use again")
        self.reuse_button.setObjectName("reuse")
        self.reuse_button.setToolTip("Set operation, model, prompt and parameters (seed "
                                     "included) as they were for the chosen job")
        self.reuse_button.clicked.connect(lambda: self.use_settings_again())
        row.addWidget(self.history_combo, 1)
        row.addWidget(self.reuse_button)
        self._fill_history()
        return row

    def _fill_history(self) -> None:
        self.history_combo.clear()
        for entry in self.history.entries:
            self.history_combo.addItem(entry.label)
            self.history_combo.setItemData(self.history_combo.count() - 1,
                                           _history_tooltip(entry), Qt.ToolTipRole)
        self.reuse_button.setEnabled(bool(self.history.entries))

    def use_settings_again(self, index: int | None = None) -> bool:
        """Put a history entry's operation, model, prompt, strength and parameters in the form."""
        index = self.history_combo.currentIndex() if index is None else index
        if not 0 <= index < len(self.history.entries):
            return False
        entry = self.history.entries[index]
        op_index = self.operation_combo.findData(entry.operation)
        if op_index < 0:
            return self._refuse(f"This server has no {entry.operation} operation.")
        self.operation_combo.setCurrentIndex(op_index)
        self._operation_changed()
        model_index = self.model_combo.findData(entry.model)
        if model_index >= 0:
            self.model_combo.setCurrentIndex(model_index)
        params = dict(entry.params)
        self.prompt.setPlainText(str(params.pop("prompt", "") or ""))
        if "strength" in params:
            self.strength.setValue(round(100 * float(params.pop("strength"))))
        loras = params.pop("loras", None) or []
        for index, (combo, weight) in enumerate(self.lora_rows):
            chosen = loras[index] if index < len(loras) else {}
            combo.setCurrentIndex(max(0, combo.findData(chosen.get("id", ""))))
            weight.setValue(float(chosen.get("weight", 1.0)))
        if self.form is not None:
            self.form.set_values(params)
        return True

    # -- connection and operations

    def connect_server(self) -> None:
        """Check the server and load its operations, off the GUI thread."""
        self._remember()
        try:
            client = Client(self.saved.server_url, self.saved.api_key)
        except AieditError as error:
            self.status.setText(str(error))
            return
        self.status.setText(f"Connecting to {client.url}…")
        self.connect_button.setEnabled(False)
        thread = CallThread(lambda: (client, client.health(), client.operations(),
                                     _optional(lambda: client._json("GET", "/v1/styles")),
                                     _optional(client.models)), self)
        thread.done.connect(self._connected)
        thread.failed.connect(self._connection_failed)
        self.call_thread = thread
        thread.start()

    def _connected(self, answer) -> None:
        client, health, operations, styles, models = answer
        self.client, self.operations = client, list(operations)
        self.styles = list((styles or {}).get("styles") or [])
        self.loras_available = [m for m in models or [] if m.get("engine") == "lora"
                                or "lora" in (m.get("operations") or [])]
        self.connect_button.setEnabled(True)
        self.status.setText(f"Connected to aiedit {health.get('version', '')} at {client.url}"
                            f" ({health.get('mode', 'personal')})")
        self.operation_combo.blockSignals(True)
        self.operation_combo.clear()
        for op in self.operations:
            self.operation_combo.addItem(op.get("title") or op["id"], op["id"])
        self.operation_combo.setCurrentIndex(
            max(0, self.operation_combo.findData(self.saved.operation)))
        self.operation_combo.blockSignals(False)
        self._operation_changed()
        self.resume_journal()

    def _connection_failed(self, message: str) -> None:
        self.client = None
        self.connect_button.setEnabled(True)
        self.status.setText(message)

    def current_operation(self) -> dict | None:
        op_id = self.operation_combo.currentData()
        return next((op for op in self.operations if op["id"] == op_id), None)

    def _operation_changed(self, *_):
        op = self.current_operation()
        if op is None:
            return
        self.operation_combo.setToolTip(op.get("description", ""))
        self._fill_models(op)
        properties = jobs.schema_properties(op)
        self.prompt.setVisible("prompt" in properties)
        for widget in (self.strength_label, self.strength, self.strength_value):
            widget.setVisible("strength" in properties)
        if "strength" in properties:
            self.strength.setValue(round(100 * (properties["strength"].get("default") or 1.0)))
        if self.form is not None:
            self.form.setParent(None)
            self.form.deleteLater()
        self.form = ParamsForm(properties, skip=OWN_WIDGETS)
        self.params_layout.addWidget(self.form)
        self.params_box.setVisible(bool(self.form.fields))
        self._fill_creative(op)

    def _fill_models(self, op: dict) -> None:
        self.model_combo.clear()
        for model in op.get("models") or []:
            label = model.get("name") or model["id"]
            if not model.get("installed", True):
                label += " (not installed)"
            self.model_combo.addItem(label, model["id"])
        wanted = self.saved.model if self.saved.operation == op["id"] else ""
        chosen = jobs.pick_model(op, wanted)
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(chosen)))

    def _remember(self) -> None:
        self.saved.server_url = self.url_edit.text().strip() or self.saved.server_url
        self.saved.api_key = self.key_edit.text().strip()
        if self.operation_combo.currentData():
            self.saved.operation = self.operation_combo.currentData()
            self.saved.model = self.model_combo.currentData() or ""
        self.saved.source = self.source_combo.currentData()
        settings.save(self.saved)

    # -- running a job

    def params(self) -> dict:
        """The parameters the form, prompt and strength describe."""
        op = self.current_operation() or {}
        properties = jobs.schema_properties(op)
        values = self.form.values() if self.form else {}
        if "prompt" in properties and self.prompt.toPlainText().strip():
            values["prompt"] = self.prompt.toPlainText().strip()
        if "strength" in properties:
            values["strength"] = self.strength.value() / 100
        if "loras" in properties and self.loras():
            values["loras"] = self.loras()
        return values

    def generate(self) -> bool:
        """Read the active document and start a job; False (with the reason shown) if not."""
        if self.job_thread is not None:
            return False
        op = self.current_operation()
        doc = Krita.instance().activeDocument()
        if self.client is None or op is None:
            return self._refuse("Connect to an aiedit server first.")
        if doc is None:
            return self._refuse("Open an image first.")
        self._remember()
        try:
            spec = scripting.prepare(doc, op, model=self.model_combo.currentData() or "",
                                     params=self.params(), source=self.source_combo.currentData(),
                                     controls=self.controls() or None, style=self.style())
        except host.HostError as error:
            return self._refuse(str(error))
        thread = JobThread(self.client, spec, self)
        thread.submitted.connect(self._submitted)
        thread.preview.connect(self.show_step_preview)
        thread.progress.connect(self._progress)
        thread.succeeded.connect(self._finished)
        thread.failed.connect(self._ended)
        thread.canceled.connect(self._canceled)
        thread.finished.connect(thread.deleteLater)
        self.job_thread, self.job_document = thread, doc
        self.generate_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._show_progress("Sending…", 0.0)
        thread.start()
        return True

    def cancel(self) -> None:
        if self.job_thread is not None:
            self.job_thread.cancel()
            self._show_progress("Canceling…", self.progress.value() / 1000)

    def _refuse(self, message: str) -> bool:
        self.progress.setFormat(message)
        self.progress.setToolTip(message)
        return False

    def _progress(self, job: dict) -> None:
        self._show_progress(describe_progress(job), progress_fraction(job))

    def _show_progress(self, text: str, fraction: float) -> None:
        self.progress.setValue(int(1000 * fraction))
        self.progress.setFormat(text)
        self.progress.setToolTip(text)

    def _submitted(self, job: dict) -> None:
        """The server has the job: journal it (it survives a reload) and add it to history."""
        thread = self.sender()
        thread = thread if isinstance(thread, JobThread) else self.job_thread
        thread.submitted_id = job["id"]
        spec = thread.spec
        try:
            self.journal.record(job["id"], self.client.url, spec)
        except OSError as error:
            self._refuse(f"Could not write the job journal: {error}")
        self.history.add(session.HistoryEntry(spec.operation, job.get("model") or spec.model,
                                              dict(spec.params), job_id=job["id"]))
        self._fill_history()

    def _finished(self, outcome: jobs.Outcome) -> None:
        thread = self.sender()
        thread = thread if isinstance(thread, JobThread) else self.job_thread
        spec = thread.spec
        doc = host.find_document(spec.capture.placement) or self.job_document
        seeds = [jobs.result_seed(r, outcome.job) for r, _ in outcome.images]
        self._note_seeds(outcome.job, [s for s in seeds if s is not None])
        if not outcome.images and not outcome.is_video:
            self.journal.forget(str(outcome.job.get("id") or ""))
        if outcome.is_video:
            self._add_pending(Pending(doc, spec, outcome), _png_thumbnail(outcome.frames[0]),
                              f"{len(outcome.frames)} frames")
        for (result, pixels), seed in zip(outcome.images, seeds, strict=True):
            self._add_pending(Pending(doc, spec, outcome, result, pixels),
                              _rgba_thumbnail(pixels), f"seed {seed}" if seed is not None else "")
        if thread is self.job_thread:
            self._ended("Done")
        else:
            self._resumed_ended(thread, "")

    def _note_seeds(self, job: dict, seeds: list) -> None:
        for entry in self.history.entries:
            if entry.job_id and entry.job_id == job.get("id") and seeds:
                entry.seeds = seeds
                self.history.add(entry)
                self._fill_history()
                return

    # -- the journal: jobs from before a reload

    def resume_journal(self) -> int:
        """Follow the journal's jobs for this server (submitted before the plugin was reloaded
        or Krita restarted); their results join the list as they finish."""
        if self.client is None:
            return 0
        started = 0
        running = {p.job_id for p in self.pending} | set(self.resuming)
        for entry in self.journal.entries(self.client.url):
            if entry["job_id"] in running:
                continue
            try:
                spec = session.spec_from_entry(entry)
            except (KeyError, TypeError, ValueError):
                self.journal.forget(entry["job_id"])
                continue
            thread = JobThread(self.client, spec, self, job_id=entry["job_id"])
            thread.progress.connect(self._progress)
            thread.succeeded.connect(self._finished)
            thread.failed.connect(self._resumed_failed)
            thread.canceled.connect(self._resumed_failed)
            thread.finished.connect(thread.deleteLater)
            self.resuming[entry["job_id"]] = thread
            thread.start()
            started += 1
        if started:
            self._show_progress(f"Following {started} job(s) from before the reload…", 0.0)
        return started

    def _resumed_failed(self, message: str = "canceled") -> None:
        thread = self.sender()
        if isinstance(thread, JobThread):
            self.journal.forget(thread.job_id)
            self._resumed_ended(thread, f"A job from before the reload ended: {message}")

    def _resumed_ended(self, thread, message: str) -> None:
        self.resuming.pop(thread.job_id, None)
        if message:
            self._refuse(message)
        elif self.job_thread is None:
            self._show_progress("Done", 1.0)

    def _canceled(self) -> None:
        self._ended("Canceled")

    def show_step_preview(self, png: bytes) -> bool:
        """Show a step preview of the running job under the progress bar."""
        image = QImage.fromData(png, "PNG")
        if image.isNull():
            return False
        self.step_preview.setPixmap(QPixmap.fromImage(
            image.scaled(2 * THUMB, 2 * THUMB, Qt.KeepAspectRatio, Qt.SmoothTransformation)))
        self.step_preview.setVisible(True)
        return True

    def _ended(self, text: str) -> None:
        self.step_preview.setVisible(False)
        self.step_preview.clear()
        thread = self.job_thread
        if text != "Done" and thread is not None and thread.submitted_id \
                and not isinstance(thread.error, ConnectionFailed):
            self.journal.forget(thread.submitted_id)  # failed or canceled: nothing to wait for
        self.job_thread = None
        self.generate_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self._show_progress(text, 1.0 if text == "Done" else 0.0)

    # -- results

    def _add_pending(self, pending: Pending, icon: QIcon, label: str) -> None:
        item = QListWidgetItem(icon, label)
        item.setToolTip(host.layer_name(pending.spec.operation, pending.spec.prompt))
        self.pending.append(pending)
        item.setData(Qt.UserRole, id(pending))
        self.results.addItem(item)

    def _items(self, items) -> list:
        items = list(items if items is not None else self.results.selectedItems())
        if not items:
            items = [self.results.item(i) for i in range(self.results.count())]
        return [(item, self._pending_of(item)) for item in items]

    def _pending_of(self, item):
        return next((p for p in self.pending if id(p) == item.data(Qt.UserRole)), None)

    def _drop(self, item, pending) -> None:
        self.results.takeItem(self.results.row(item))
        if pending in self.pending:
            self.pending.remove(pending)
        if pending is not None and not any(p.job_id == pending.job_id for p in self.pending):
            self.journal.forget(pending.job_id)

    # -- preview on the canvas

    def update_preview(self) -> None:
        """Show the one selected result on its document (not applied: no undo step to take
        back, the layer goes when the selection changes, on Apply or Discard)."""
        for doc in Krita.instance().documents():
            host.remove_previews(doc)
        items = self.results.selectedItems()
        if not self.preview_check.isChecked() or len(items) != 1:
            return
        pending = self._pending_of(items[0])
        if pending is None or pending.result is None:
            return
        doc = host.find_document(pending.spec.capture.placement)
        if doc is None:
            return
        try:
            host.show_preview(doc, pending.spec.capture, pending.spec.operation, pending.result,
                              pending.pixels, pending.outcome.raws.get(pending.result.index))
        except host.HostError as error:
            self._refuse(str(error))

    def apply(self, items=None, on_conflict=None) -> list:
        """Insert the selected results (all when none is selected) as new layers.

        A result whose document was closed or whose canvas changed meanwhile is not placed
        blindly: ``on_conflict(pending, error)`` (by default a question to the user) answers
        "place" (at the old position, or as a new image when the document is closed),
        "discard", or "keep" (it stays in the list)."""
        ask = on_conflict or self._ask_conflict
        for doc in Krita.instance().documents():
            host.remove_previews(doc)
        nodes = []
        for item, pending in self._items(items):
            if pending is None:
                continue
            try:
                nodes.extend(self._apply_one(pending))
            except (host.CanvasChanged, host.DocumentClosed) as error:
                choice = ask(pending, error)
                if choice == "place":
                    try:
                        nodes.extend(self._apply_one(pending, force=True))
                    except (host.HostError, AieditError) as again:
                        self._refuse(str(again))
                        continue
                elif choice != "discard":
                    self._refuse(str(error))
                    continue
            except (host.HostError, AieditError) as error:
                self._refuse(str(error))
                continue
            self._drop(item, pending)
        self.update_preview()
        return nodes

    def _ask_conflict(self, pending, error) -> str:
        from PyQt5.QtWidgets import QMessageBox

        box = QMessageBox(self)
        box.setWindowTitle("aiedit")
        box.setText(str(error))
        place_text = "Open as new image" if isinstance(error, host.DocumentClosed) \
            else "Place at old position"
        place = box.addButton(place_text, QMessageBox.AcceptRole)
        discard = box.addButton("Discard", QMessageBox.DestructiveRole)
        box.addButton("Keep in list", QMessageBox.RejectRole)
        box.exec_()
        clicked = box.clickedButton()
        return "place" if clicked is place else "discard" if clicked is discard else "keep"

    def _apply_one(self, pending: Pending, force: bool = False) -> list:
        outcome = pending.outcome
        if pending.result is None:
            return scripting.apply_outcome(pending.document, pending.spec, outcome, force)
        raw = outcome.raws.get(pending.result.index)
        if force and host.find_document(pending.spec.capture.placement) is None:
            return [scripting.open_as_new_document(pending.spec, outcome.job, pending.result,
                                                   pending.pixels, raw)]
        document = host.check_document(pending.spec.capture)
        return [scripting.apply_image(document, pending.spec, outcome.job, pending.result,
                                      pending.pixels, raw, force,
                                      outcome.masks.get(pending.result.index))]

    def discard(self, items=None) -> None:
        """Drop the selected results (all when none is selected)."""
        for item, pending in self._items(items):
            self._drop(item, pending)
        self.update_preview()


class _LiveFrameThread(CallThread):
    """Converts the capture, skips an unchanged one, sends the frame (worker thread)."""

    def __init__(self, session, capture, params: dict, last: str, parent=None):
        super().__init__(self._run, parent)
        self.session, self.capture, self.params, self.last = session, capture, params, last

    def _run(self):
        capture = self.capture
        image = host.to_8bit(capture.image)
        fingerprint = live.fingerprint(image.data, capture.mask.data if capture.mask else b"",
                                       self.params, capture.region.as_json())
        if fingerprint == self.last:
            return fingerprint, capture, None
        frame = self.session.frame(image, capture.region, capture.mask, self.params)
        return fingerprint, capture, frame


def _optional(call):
    """An answer the docker can do without (styles, models on older servers): None on error."""
    try:
        return call()
    except AieditError:
        return None


def _history_tooltip(entry) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(entry.params.items()) if k != "prompt")
    lines = [f"{entry.operation} with {entry.model}"]
    if entry.params.get("prompt"):
        lines.append(f"Prompt: {entry.params['prompt']}")
    if entry.seeds:
        lines.append("Seeds: " + ", ".join(map(str, entry.seeds)))
    if params:
        lines.append(params)
    return "\n".join(lines)


def _rgba_thumbnail(pixels) -> QIcon:
    pixels = host.to_8bit(pixels)
    image = QImage(pixels.data, pixels.width, pixels.height, pixels.width * 4,
                   QImage.Format_RGBA8888)
    return QIcon(QPixmap.fromImage(image.scaled(THUMB, THUMB, Qt.KeepAspectRatio,
                                                Qt.SmoothTransformation)))


def _png_thumbnail(png: bytes) -> QIcon:
    image = QImage.fromData(png, "PNG")
    return QIcon(QPixmap.fromImage(image.scaled(THUMB, THUMB, Qt.KeepAspectRatio,
                                                Qt.SmoothTransformation)))


def generate_in_active_window() -> bool:
    """For the ``aiedit_generate`` action: run Generate in the docker of the active window."""
    dockers = live_dockers()
    if not dockers:
        return False
    visible = [d for d in dockers if d.isVisible()] or dockers
    return visible[-1].generate()


def apply_in_active_window() -> list:
    """For the ``aiedit_apply`` action: apply every pending result."""
    dockers = live_dockers()
    return dockers[-1].apply() if dockers else []
