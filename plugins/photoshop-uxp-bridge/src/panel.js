"use strict";
/**
 * The panel: server settings, operation picker with parameters built from the server's
 * schemas, prompt, progress with queue position, Cancel, and Apply / Discard for results.
 * It only reacts to JobSession updates; protocol and pixel code live elsewhere.
 */

const { AieditClient } = require("./client");
const { PhotoshopHost } = require("./host");
const { JobSession } = require("./job");
const { Journal, FolderBlobs, MemoryBlobs } = require("./journal");
const { ResultsBrowser } = require("./browser");
const { CreativeControls } = require("./creative");
const { LiveMode } = require("./live");
const { fieldsFromSchema, paramsFromValues, hasPrompt } = require("./params");
const { el, setChildren } = require("./dom");

const DEFAULT_SERVER = "http://127.0.0.1:8790";
const SETTINGS_KEY = "aiedit.settings";
const PERMISSION_HINT = "If the server runs on another computer, its address must be listed in " +
  "manifest.json (requiredPermissions.network.domains): rebuild with " +
  "`npm run package -- --remote URL`.";

const ORIGIN_HINT = "This Photoshop sends an Origin header with the panel's requests: ask the " +
  "server's administrator to add the origin named above to AIEDIT_CORS_ORIGINS.";

function loadSettings(storage) {
  try {
    return { server: DEFAULT_SERVER, key: "", margin: 32, source: "composite",
      ...JSON.parse(storage.getItem(SETTINGS_KEY) || "{}") };
  } catch {
    return { server: DEFAULT_SERVER, key: "", margin: 32, source: "composite" };
  }
}

function labelled(document, label, control) {
  return el(document, "label", { class: "row" }, [el(document, "span", { text: label }), control]);
}

function progressText(update) {
  const job = update.job;
  switch (update.phase) {
    case "reading": return "Reading pixels…";
    case "submitting": return "Sending…";
    case "queued":
    case "waiting":
      return job && job.queue_position > 0
        ? `Queued: ${job.queue_position} job(s) ahead` : "Queued: next";
    case "running": {
      const p = (job && job.progress) || {};
      const pct = Math.round((p.fraction || 0) * 100);
      const steps = p.total ? ` step ${p.step}/${p.total}` : "";
      const eta = p.eta_s ? `, about ${Math.ceil(p.eta_s)} s left` : "";
      return `${p.stage || "Running"}${steps} (${pct}%)${eta}`;
    }
    case "downloading": return "Downloading results…";
    case "succeeded": return "Done.";
    case "canceled": return "Canceled.";
    case "failed": return "Failed.";
    default: return "";
  }
}

class Panel {
  /**
   * `storage` is localStorage; `uxp` the uxp module (its data folder keeps the selection
   * masks of jobs in flight, its shell opens the account pages). `pollWait` is the long-poll
   * wait in seconds.
   */
  constructor(root, { photoshop, storage, uxp = null, fetch: fetchImpl = globalThis.fetch,
    pollWait = 10, events = true, liveIntervalMs = 250 }) {
    this.root = root;
    this.document = root.ownerDocument;
    this.host = new PhotoshopHost(photoshop);
    this.storage = storage;
    this.uxp = uxp;
    this.fetch = fetchImpl;
    this.pollWait = pollWait;
    this.events = events;
    this.liveIntervalMs = liveIntervalMs;
    this.live = null;
    this.settings = loadSettings(storage);
    this.operations = [];
    this.catalog = { styles: [], models: [], components: {} };
    this.session = null;
    this.sessions = new Set();
    this.journal = new Journal(storage, uxp && uxp.storage ? new FolderBlobs(uxp.storage)
      : new MemoryBlobs());
    this.browser = new ResultsBrowser({
      document: this.document, host: this.host, journal: this.journal, storage,
      clientFor: (entry) => this.client(entry.server),
      say: (text, isError) => this.say(text, isError),
      onUseSettings: (entry) => this.useSettings(entry),
    });
    this.creative = new CreativeControls({ document: this.document, host: this.host });
    this.build();
    this.resumed = this.resume();
  }

  build() {
    const d = this.document;
    this.serverInput = el(d, "input", { type: "text", value: this.settings.server });
    this.keyInput = el(d, "input", { type: "password", value: this.settings.key });
    this.connectButton = el(d, "button", { text: "Connect" });
    this.operationSelect = el(d, "select");
    this.modelSelect = el(d, "select");
    this.sourceSelect = el(d, "select", {}, [
      el(d, "option", { value: "composite", text: "All visible layers" }),
      el(d, "option", { value: "layer", text: "Active layer" }),
    ]);
    this.sourceSelect.value = this.settings.source;
    this.marginInput = el(d, "input", { type: "number", min: "0", value: String(this.settings.margin) });
    this.promptInput = el(d, "textarea", { rows: "3", placeholder: "Describe the change" });
    this.paramsBox = el(d, "div", { class: "params" });
    this.keysButton = el(d, "button", { text: "Get a key" });
    this.creditsButton = el(d, "button", { text: "Buy credits" });
    this.runButton = el(d, "button", { text: "Run" });
    this.copyButton = el(d, "button", { text: "Work on an RGB copy" });
    this.copyButton.hidden = true;
    this.cancelButton = el(d, "button", { text: "Cancel", disabled: "" });
    this.liveButton = el(d, "button", { text: "Start live" });
    this.liveApplyButton = el(d, "button", { text: "Apply live", disabled: "" });
    this.progressBar = el(d, "div", { class: "bar" });
    this.previewImage = el(d, "img", { class: "step-preview", alt: "step preview" });
    this.previewImage.hidden = true;
    this.statusLine = el(d, "div", { class: "status" });
    this.applyButton = el(d, "button", { text: "Apply selected", disabled: "" });
    this.discardButton = el(d, "button", { text: "Discard selected", disabled: "" });
    this.resultLine = el(d, "div", { class: "results" });
    setChildren(this.root, [
      labelled(d, "Server", this.serverInput), labelled(d, "Key", this.keyInput),
      el(d, "div", { class: "buttons" }, [this.connectButton, this.keysButton,
        this.creditsButton]),
      labelled(d, "Operation", this.operationSelect),
      labelled(d, "Model", this.modelSelect), labelled(d, "Read from", this.sourceSelect),
      labelled(d, "Context margin (px)", this.marginInput), this.promptInput, this.paramsBox,
      this.creative.box,
      el(d, "div", { class: "buttons" }, [this.runButton, this.cancelButton]),
      el(d, "div", { class: "buttons" }, [this.liveButton, this.liveApplyButton]),
      el(d, "div", { class: "track" }, [this.progressBar]), this.previewImage, this.statusLine,
      this.copyButton,
      this.resultLine, this.browser.choiceBox,
      el(d, "div", { class: "buttons" }, [this.applyButton, this.discardButton]),
      this.browser.box,
    ]);
    this.connectButton.addEventListener("click", () => this.connect());
    this.operationSelect.addEventListener("change", () => this.showOperation());
    this.modelSelect.addEventListener("change", () => this.showCreative());
    this.keysButton.addEventListener("click", () => this.openPage("/account/keys"));
    this.creditsButton.addEventListener("click", () => this.openPage("/account/credits"));
    this.runButton.addEventListener("click", () => this.run());
    this.copyButton.addEventListener("click", () => this.workOnCopy());
    this.cancelButton.addEventListener("click", () => this.cancel());
    this.liveButton.addEventListener("click", () => this.toggleLive());
    this.liveApplyButton.addEventListener("click", () => this.applyLive());
    this.promptInput.addEventListener("input", () => this.liveParamsChanged());
    this.applyButton.addEventListener("click", () => this.apply());
    this.discardButton.addEventListener("click", () => this.discard());
  }

  saveSettings() {
    this.settings = {
      server: this.serverInput.value.trim() || DEFAULT_SERVER, key: this.keyInput.value.trim(),
      margin: Number(this.marginInput.value) || 0, source: this.sourceSelect.value,
    };
    this.storage.setItem(SETTINGS_KEY, JSON.stringify(this.settings));
  }

  client(server = this.settings.server) {
    return new AieditClient({ baseUrl: server, apiKey: this.settings.key, fetch: this.fetch });
  }

  newSession(client) {
    const session = new JobSession({
      client, host: this.host, onUpdate: (u) => this.onUpdate(u), pollWait: this.pollWait,
      events: this.events,
    });
    this.sessions.add(session);
    return session;
  }

  /** Follows the jobs a previous panel left running (a reload, or Photoshop restarted). */
  async resume() {
    const waiting = this.journal.inFlight();
    if (waiting.length) {
      this.say(`Following ${waiting.length} job(s) sent before the panel reloaded…`);
    }
    this.setBusy(waiting.length > 0);
    await this.browser.clearPreview().catch(() => {});
    if (!waiting.length) {
      return;
    }
    try {
      await Promise.all(waiting.map(async (entry) => {
        const session = this.newSession(this.client(entry.server));
        session.jobId = entry.id;
        this.session = session;
        try {
          const job = await this.browser.follow(entry, session);
          this.reportFinished(entry, job);
        } finally {
          this.sessions.delete(session);
        }
      }));
    } catch (err) {
      this.fail(err);
    } finally {
      this.session = null;
      this.setBusy(false);
    }
  }

  /** Stops following jobs (the panel is going away); the journal keeps them. */
  close() {
    for (const session of this.sessions) {
      session.stop();
    }
    if (this.live) {
      this.live.stop().catch(() => {});
      this.live = null;
    }
  }

  say(text, isError = false) {
    this.statusLine.textContent = text;
    this.statusLine.className = isError ? "status error" : "status";
    this.copyButton.hidden = true;
  }

  /** Shows an error; one the host can work around offers "Work on an RGB copy". */
  fail(err) {
    const hint = err.code === "unreachable" ? ` ${PERMISSION_HINT}`
      : err.code === "origin_not_allowed" ? ` ${ORIGIN_HINT}` : "";
    this.say(`${err.message}${hint && !err.message.endsWith(".") ? "." : ""}${hint}`, true);
    this.copyButton.hidden = !err.copyHelps;
  }

  async workOnCopy() {
    try {
      const copy = await this.host.workingCopy(this.host.activeDocument());
      this.say(`Working on "${copy.title}", an RGB copy: press Run again.`);
    } catch (err) {
      this.fail(err);
    }
  }

  async connect() {
    this.saveSettings();
    this.say("Connecting…");
    const client = this.client();
    try {
      this.operations = await client.operations();
      const [styles, models, components] = await Promise.all([
        client.styles(), client.models(), client.schemaComponents(),
      ]);
      this.catalog = { styles, models, components };
    } catch (err) {
      this.fail(err);
      return;
    }
    setChildren(this.operationSelect, this.operations.map((op) =>
      el(this.document, "option", { value: op.id, text: op.title || op.id })));
    this.showOperation();
    this.say(`Connected: ${this.operations.length} operations.`);
  }

  /**
   * Opens one of the server's account pages (hosted mode: /account/keys, /account/credits) in
   * the browser, with uxp.shell.openExternal (manifest permission launchProcess http/https).
   */
  async openPage(path) {
    this.saveSettings();
    const url = this.client().pageUrl(path);
    try {
      if (!this.uxp || !this.uxp.shell) {
        throw new Error("this Photoshop cannot open a browser from a panel");
      }
      await this.uxp.shell.openExternal(url, "aiedit opens your account page");
      this.say(`Opened ${url} in your browser.`);
    } catch (err) {
      this.say(`Open ${url} in your browser (${err.message}).`, true);
    }
  }

  currentOperation() {
    return this.operations.find((op) => op.id === this.operationSelect.value) || null;
  }

  showOperation() {
    const op = this.currentOperation();
    if (!op) {
      return;
    }
    const d = this.document;
    setChildren(this.modelSelect, (op.models || []).map((m) => el(d, "option", {
      value: m.id, text: `${m.name || m.id}${m.installed === false ? " (not installed)" : ""}`,
    })));
    if (op.default_model) {
      this.modelSelect.value = op.default_model;
    }
    this.promptInput.style.display = hasPrompt(op.params_schema) ? "" : "none";
    this.fieldInputs = {};
    setChildren(this.paramsBox, fieldsFromSchema(op.params_schema).map((field) => {
      const input = this.inputFor(field);
      input.addEventListener("change", () => this.liveParamsChanged());
      this.fieldInputs[field.name] = input;
      return labelled(d, field.label, input);
    }));
    this.showCreative();
  }

  /** Control layers, reference layer, style and LoRAs for the operation and model chosen. */
  showCreative() {
    const op = this.currentOperation();
    if (op) {
      this.creative.configure(op, this.catalog, this.modelSelect.value || op.default_model);
    }
  }

  inputFor(field) {
    const d = this.document;
    if (field.type === "enum") {
      const select = el(d, "select", {}, field.choices.map((c) =>
        el(d, "option", { value: String(c), text: String(c) })));
      if (field.default !== undefined) {
        select.value = String(field.default);
      }
      return select;
    }
    if (field.type === "boolean") {
      const box = el(d, "input", { type: "checkbox" });
      box.checked = field.default === true;
      return box;
    }
    const numeric = field.type === "integer" || field.type === "number";
    const input = el(d, "input", { type: numeric ? "number" : "text" });
    if (field.default !== undefined && field.default !== null) {
      input.setAttribute("placeholder", String(field.default));
    }
    return input;
  }

  fieldValues() {
    const values = {};
    for (const [name, input] of Object.entries(this.fieldInputs || {})) {
      values[name] = input.type === "checkbox" ? input.checked : input.value;
    }
    return values;
  }

  setBusy(busy) {
    this.busy = busy;
    this.runButton.disabled = busy;
    this.cancelButton.disabled = !busy;
    this.refreshButtons();
  }

  refreshButtons() {
    const open = this.browser.entriesWithOpenResults().length > 0;
    this.applyButton.disabled = !open;
    this.discardButton.disabled = !open;
  }

  onUpdate(update) {
    if (update.phase === "preview") {
      this.previewImage.setAttribute("src", update.preview.url);
      this.previewImage.hidden = false;
      this.previewStep = update.preview.step;
      return;
    }
    if (["reading", "succeeded", "failed", "canceled"].includes(update.phase)) {
      this.previewImage.hidden = true;
    }
    const fraction = update.job && update.job.progress ? update.job.progress.fraction || 0 : 0;
    this.progressBar.style.width = `${Math.round(fraction * 100)}%`;
    this.say(progressText(update));
  }

  async run() {
    const op = this.currentOperation();
    if (!op) {
      this.say("Connect to a server first.", true);
      return;
    }
    const form = paramsFromValues(op.params_schema, this.fieldValues(), this.promptInput.value);
    const creative = this.creative.values();
    const errors = [...form.errors, ...creative.errors];
    if (errors.length) {
      this.say(errors.join("; "), true);
      return;
    }
    const params = { ...form.params, ...creative.params };
    this.saveSettings();
    this.resultLine.textContent = "";
    const settings = {
      operation: op.id, model: this.modelSelect.value || null, params,
      source: this.settings.source, margin: this.settings.margin,
      style: creative.style, creative: creative.settings,
    };
    const session = this.newSession(this.client());
    this.session = session;
    this.setBusy(true);
    try {
      const started = await session.start({
        ...settings, operation: op, extra: creative.style ? { style: creative.style } : {},
        files: (doc, region) => this.host.readLayers(doc, creative.layers, region.bounds)
          .then((pixels) => Object.fromEntries(Object.entries(pixels).map(([part, bytes]) =>
            [part, { width: region.bounds.right - region.bounds.left,
              height: region.bounds.bottom - region.bounds.top, bytes }]))),
      });
      const entry = await this.browser.added(started, settings, this.settings.server);
      const job = await this.browser.follow(entry, session, started.job);
      this.reportFinished(entry, job);
    } catch (err) {
      this.fail(err);
    } finally {
      this.sessions.delete(session);
      this.session = null;
      this.setBusy(false);
    }
  }

  reportFinished(entry, job) {
    if (job.state === "succeeded") {
      const count = this.journal.get(entry.id).results.length;
      this.resultLine.textContent = `${count} result(s) ready: ${entry.name}`;
    } else if (job.state === "failed") {
      this.say((job.error && job.error.message) || "The job failed.", true);
    }
  }

  /** Puts a past job's operation, model, prompt and parameters back into the form. */
  useSettings(entry) {
    const { settings } = entry;
    if (!this.operations.some((op) => op.id === settings.operation)) {
      this.say(`Connect to a server that offers ${settings.operation} first.`, true);
      return;
    }
    this.operationSelect.value = settings.operation;
    this.showOperation();
    if (settings.model) {
      this.modelSelect.value = settings.model;
    }
    const params = settings.params || {};
    this.promptInput.value = params.prompt || "";
    for (const [name, input] of Object.entries(this.fieldInputs || {})) {
      const value = params[name];
      if (input.type === "checkbox") {
        input.checked = value === true;
      } else {
        input.value = value === undefined || value === null ? "" : String(value);
      }
    }
    this.showCreative();
    this.creative.restore(settings.creative || {});
    this.sourceSelect.value = settings.source || "composite";
    this.marginInput.value = String(settings.margin ?? this.settings.margin);
    this.say(`Settings of "${entry.name}" are back in the form.`);
  }

  /** Starts or stops live mode with the operation, model and params in the form. */
  async toggleLive() {
    if (this.live) {
      const live = this.live;
      this.live = null;
      this.liveButton.textContent = "Start live";
      this.liveApplyButton.disabled = true;
      this.runButton.disabled = this.busy;
      await live.stop();
      this.say("Live mode stopped.");
      return;
    }
    const op = this.currentOperation();
    if (!op) {
      this.say("Connect to a server first.", true);
      return;
    }
    const { params, errors } = paramsFromValues(op.params_schema, this.fieldValues(),
      this.promptInput.value);
    if (errors.length) {
      this.say(errors.join("; "), true);
      return;
    }
    this.saveSettings();
    const live = new LiveMode({
      photoshop: this.host.ps, host: this.host, client: this.client(),
      onStatus: (text, isError) => this.say(text, isError), intervalMs: this.liveIntervalMs,
    });
    this.live = live;
    this.liveButton.textContent = "Stop live";
    this.runButton.disabled = true;
    try {
      await live.start({ operation: op, model: this.modelSelect.value || null, params });
      this.liveApplyButton.disabled = false;
    } catch (err) {
      this.live = null;
      this.liveButton.textContent = "Start live";
      this.runButton.disabled = this.busy;
      await live.stop().catch(() => {});
      this.fail(err);
    }
  }

  /** The prompt or a field changed while live: the next frame uses the new values. */
  liveParamsChanged() {
    const op = this.currentOperation();
    if (!this.live || !op) {
      return;
    }
    const { params, errors } = paramsFromValues(op.params_schema, this.fieldValues(),
      this.promptInput.value);
    if (errors.length) {
      return;
    }
    const rest = { ...params };
    delete rest.count; // a live session renders one frame at a time
    const changes = {};
    for (const [name, value] of Object.entries(rest)) {
      if (JSON.stringify(this.live.params[name]) !== JSON.stringify(value)) {
        changes[name] = value;
      }
    }
    if (Object.keys(changes).length) {
      this.live.setParams(changes);
    }
  }

  async applyLive() {
    try {
      await this.live.apply();
      this.say("The live frame is a layer now.");
    } catch (err) {
      this.fail(err);
    }
  }

  async cancel() {
    if (!this.session) {
      return;
    }
    this.say("Canceling…");
    try {
      await this.session.cancel();
    } catch (err) {
      this.say(err.message, true);
    }
  }

  async apply() {
    try {
      await this.browser.apply();
    } catch (err) {
      this.fail(err);
    }
    this.refreshButtons();
  }

  async discard() {
    try {
      const n = await this.browser.discard();
      this.say(n ? `Discarded ${n} result(s).` : "Check the results to discard first.", !n);
    } catch (err) {
      this.fail(err);
    }
    this.refreshButtons();
  }
}

/** Builds the panel into `root`; options as for Panel (localStorage, the uxp module). */
function createPanel(root, options) {
  return new Panel(root, options);
}

module.exports = { createPanel, progressText, DEFAULT_SERVER };
