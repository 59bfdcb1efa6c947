"use strict";
/**
 * The results browser: every job of the session with its prompt, seed and parameters, its
 * results as thumbnails with a checkbox and an on-canvas preview, "Use these settings", and
 * Apply / Discard for the checked results. A new run adds to the list; nothing unapplied is
 * dropped unless the user discards it. Jobs live in the Journal, so a panel reload finds them
 * (and follows the ones still running).
 *
 * Before applying, each job's document is checked: closed, or its canvas changed size since the
 * job was sent (a crop, an image or canvas resize), the user is told and chooses between
 * placing the result at its old position and discarding it.
 */

const { isTerminal } = require("./client");
const { applyOutcome, MASKED_OPERATIONS } = require("./job");
const { settled } = require("./journal");
const { el, setChildren } = require("./dom");

/** "seed 5 · steps 20 · strength 0.6": the parameters a user reads back, prompt aside. */
function paramsLine(entry) {
  const params = entry.settings.params || {};
  const parts = [];
  if (entry.settings.model) {
    parts.push(entry.settings.model);
  }
  if (entry.settings.style) {
    parts.push(`style ${entry.settings.style}`);
  }
  for (const [name, value] of Object.entries(params)) {
    if (name !== "prompt" && value !== null && typeof value !== "object") {
      parts.push(`${name.replace(/_/g, " ")} ${value}`);
    }
  }
  return parts.join(" · ");
}

function stateText(entry) {
  if (entry.state === "succeeded") {
    const applied = entry.results.filter((r) => r.status === "applied").length;
    const open = entry.results.filter((r) => r.status === "new").length;
    return `${entry.results.length} result(s)` + (applied ? `, ${applied} applied` : "") +
      (open && applied ? `, ${open} open` : "");
  }
  if (entry.state === "failed") {
    return `failed: ${entry.error || "the job failed"}`;
  }
  return entry.state;
}

class ResultsBrowser {
  /**
   * @param {{document, host, journal, clientFor: Function, say: Function,
   *   onUseSettings: Function, onJobUpdate?: Function, storage}} options
   */
  constructor({ document, host, journal, clientFor, say, onUseSettings, onJobUpdate,
    storage }) {
    this.document = document;
    this.host = host;
    this.journal = journal;
    this.clientFor = clientFor;
    this.say = say;
    this.onUseSettings = onUseSettings;
    this.onJobUpdate = onJobUpdate || (() => {});
    this.storage = storage;
    this.pixels = new Map();
    this.views = {};
    this.preview = JSON.parse(storage.getItem("aiedit.preview") || "null");
    this.pendingChoice = null;
    this.box = el(document, "div", { class: "history" });
    this.choiceText = el(document, "div", { class: "choice" });
    this.placeButton = el(document, "button", { text: "Place at the old position" });
    this.dropButton = el(document, "button", { text: "Discard it" });
    this.choiceBox = el(document, "div", { class: "choice" },
      [this.choiceText, el(document, "div", { class: "buttons" },
        [this.placeButton, this.dropButton])]);
    this.choiceBox.hidden = true;
    this.placeButton.addEventListener("click", () => this.choose(true));
    this.dropButton.addEventListener("click", () => this.choose(false));
    this.render();
  }

  key(entry, result) {
    return `${entry.id}/${result.index}`;
  }

  /** Records a job the panel just submitted. */
  async added(started, settings, server) {
    const { doc, region, job, name, operationId } = started;
    await this.journal.add({
      id: job.id, server, docId: doc.id, docTitle: doc.title, name, operationId, settings,
      region: { bounds: region.bounds }, canvas: { width: doc.width, height: doc.height },
      state: job.state, error: null, results: [], createdAt: new Date().toISOString(),
    }, MASKED_OPERATIONS.has(operationId) ? region.mask : null);
    this.render();
    return this.journal.get(job.id);
  }

  /** A finished job's results join the list, checked, with thumbnails. */
  async finished(entry, job) {
    const shift = entry.shift || { x: 0, y: 0 };
    const results = job.state === "succeeded"
      ? job.results.filter((r) => r.kind === "image").map((r) => ({
        index: r.index, seed: r.seed ?? null, width: r.width, height: r.height,
        depth: r.depth || 8, url: r.url, kind: r.kind, status: "new", selected: true,
        offset: { x: r.offset.x + shift.x, y: r.offset.y + shift.y },
      })) : [];
    this.journal.update(entry.id, {
      state: job.state, results,
      error: job.state === "failed" ? (job.error && job.error.message) || "failed" : null,
    });
    this.render();
    for (const result of results) {
      await this.loadThumbnail(entry, result);
    }
  }

  async download(entry, result) {
    const key = this.key(entry, result);
    if (!this.pixels.has(key)) {
      const got = await this.clientFor(entry).resultRgba(result);
      this.pixels.set(key, { ...got, offset: { ...result.offset } });
    }
    return this.pixels.get(key);
  }

  async loadThumbnail(entry, result) {
    try {
      const pixels = await this.download(entry, result);
      const src = await this.host.thumbnail(pixels);
      const view = this.views[entry.id] && this.views[entry.id].results[result.index];
      if (src && view) {
        view.img.setAttribute("src", src);
        result.thumbnail = src;
      }
    } catch (err) {
      this.say(`Thumbnail of ${entry.name}: ${err.message}`, true);
    }
  }

  /**
   * Follows a job until it finishes, with the session's long-polls; resolves to the job.
   * `session` is a JobSession bound to the entry's server.
   */
  async follow(entry, session, job = { id: entry.id, state: entry.state }) {
    const done = await session.follow(job);
    if (!isTerminal(done) || session.stopped) {
      return done; // the panel is going away; the journal keeps the job for the next one
    }
    await this.finished(this.journal.get(entry.id), done);
    return done;
  }

  entriesWithOpenResults() {
    return this.journal.entries.filter((e) => e.results.some((r) => r.status === "new"));
  }

  /** The checked results that are still open, by job, oldest job first. */
  selected() {
    const out = [];
    for (const entry of this.journal.entries) {
      const results = entry.results.filter((r) => r.status === "new" && r.selected);
      if (results.length) {
        out.unshift({ entry, results });
      }
    }
    return out;
  }

  /** Why an entry cannot be applied as it stands (null when it can). */
  conflict(entry) {
    const doc = this.host.documentById(entry.docId);
    if (!doc) {
      return `"${entry.docTitle}", where "${entry.name}" ran, is closed. Place its result in ` +
        "the active document at the same position, or discard it?";
    }
    if (doc.width !== entry.canvas.width || doc.height !== entry.canvas.height) {
      return `The canvas of "${entry.docTitle}" changed from ${entry.canvas.width}×` +
        `${entry.canvas.height} to ${doc.width}×${doc.height} px since "${entry.name}" was ` +
        "sent, so its result may not line up. Place it at the old position, or discard it?";
    }
    return null;
  }

  /** Applies the checked results as new layers, one history step per job. */
  async apply(force = new Set()) {
    const chosen = this.selected();
    if (!chosen.length) {
      this.say("Check the results to apply first.", true);
      return 0;
    }
    for (const { entry } of chosen) {
      const problem = force.has(entry.id) ? null : this.conflict(entry);
      if (problem) {
        this.ask(problem, entry, force);
        return 0;
      }
    }
    await this.clearPreview();
    let layers = 0;
    for (const { entry, results } of chosen) {
      layers += await this.applyEntry(entry, results);
    }
    this.say(`Applied ${layers} layer(s).`);
    this.render();
    return layers;
  }

  async applyEntry(entry, results) {
    const doc = this.host.documentById(entry.docId) || this.host.activeDocument();
    const pixels = [];
    for (const result of results) {
      pixels.push({ ...(await this.download(entry, result)), offset: { ...result.offset } });
    }
    const applied = await applyOutcome(this.host, {
      doc, name: entry.name, operationId: entry.operationId, results: pixels,
      region: { bounds: entry.region.bounds, mask: await this.journal.mask(entry) },
    });
    for (const result of results) {
      result.status = "applied";
      this.pixels.delete(this.key(entry, result));
    }
    entry.canvas = { width: doc.width, height: doc.height };
    this.journal.save();
    if (applied.grown && applied.documentId === doc.id) {
      this.journal.shiftDocument(doc.id, applied.grown.left, applied.grown.top,
        { width: doc.width, height: doc.height }, entry.id);
    }
    await this.settle(entry);
    return applied.layerIds.length;
  }

  ask(text, entry, force) {
    this.pendingChoice = { entry, force };
    this.choiceText.textContent = text;
    this.choiceBox.hidden = false;
    this.say(text, true);
  }

  async choose(place) {
    const choice = this.pendingChoice;
    this.pendingChoice = null;
    this.choiceBox.hidden = true;
    if (!choice) {
      return;
    }
    if (place) {
      if (!this.host.documentById(choice.entry.docId) && !this.host.ps.app.activeDocument) {
        this.say("Open a document to place the result in.", true);
        return;
      }
      await this.apply(new Set([...choice.force, choice.entry.id]));
      return;
    }
    for (const r of choice.entry.results) {
      if (r.status === "new" && r.selected) {
        r.status = "discarded";
      }
    }
    this.journal.save();
    await this.settle(choice.entry);
    this.render();
    if (this.selected().length) {
      await this.apply(choice.force);
    }
  }

  /** Discards the checked results (they leave the list; the job stays in the history). */
  async discard() {
    const chosen = this.selected();
    if (this.preview && chosen.some(({ entry, results }) => results.some((r) =>
      this.preview.key === this.key(entry, r)))) {
      await this.clearPreview();
    }
    for (const { entry, results } of chosen) {
      for (const r of results) {
        r.status = "discarded";
        this.pixels.delete(this.key(entry, r));
      }
      await this.settle(entry);
    }
    this.journal.save();
    this.render();
    return chosen.reduce((n, c) => n + c.results.length, 0);
  }

  /** Once every result of a job is applied or discarded, the server may delete the job. */
  async settle(entry) {
    if (entry.state === "succeeded" && settled(entry)) {
      await this.clientFor(entry).remove(entry.id).catch(() => {});
    }
  }

  /** Shows one result on the canvas (replacing any other preview), or hides it. */
  async togglePreview(entry, result) {
    const key = this.key(entry, result);
    const showing = this.preview && this.preview.key === key;
    await this.clearPreview();
    if (showing) {
      this.render();
      return;
    }
    const doc = this.host.documentById(entry.docId);
    if (!doc) {
      this.say(`"${entry.docTitle}" is closed: nothing to preview on.`, true);
      return;
    }
    const pixels = await this.download(entry, result);
    const mask = await this.journal.mask(entry);
    const layerId = await this.host.showPreview(doc, { ...pixels, offset: result.offset },
      mask ? { bounds: entry.region.bounds, data: mask } : null);
    this.setPreview({ key, docId: doc.id, layerId });
    this.render();
  }

  async clearPreview() {
    if (this.preview) {
      const { docId, layerId } = this.preview;
      this.setPreview(null);
      await this.host.clearPreview(docId, layerId);
    }
  }

  setPreview(preview) {
    this.preview = preview;
    this.storage.setItem("aiedit.preview", JSON.stringify(preview));
  }

  render() {
    const d = this.document;
    this.views = {};
    setChildren(this.box, this.journal.entries.map((entry) => {
      const use = el(d, "button", { text: "Use these settings" });
      use.addEventListener("click", () => this.onUseSettings(entry));
      const view = { root: null, use, results: {} };
      const results = entry.results.filter((r) => r.status !== "discarded").map((result) => {
        const box = el(d, "input", { type: "checkbox" });
        box.checked = result.status === "new" && result.selected;
        box.disabled = result.status !== "new";
        box.addEventListener("change", () => {
          result.selected = box.checked;
          this.journal.save();
        });
        const showing = this.preview && this.preview.key === this.key(entry, result);
        const preview = el(d, "button", { text: showing ? "Hide preview" : "Preview" });
        preview.disabled = result.status !== "new";
        preview.addEventListener("click", () => this.togglePreview(entry, result)
          .catch((err) => this.say(err.message, true)));
        const img = el(d, "img", { class: "thumb", alt: `result ${result.index + 1}` });
        if (result.thumbnail) {
          img.setAttribute("src", result.thumbnail);
        }
        const label = result.seed !== null ? `seed ${result.seed}` : `#${result.index + 1}`;
        const status = el(d, "span", {
          text: result.status === "applied" ? `${label} (applied)` : label,
        });
        view.results[result.index] = { box, preview, img, status };
        return el(d, "div", { class: "result" }, [img, box, status, preview]);
      });
      view.root = el(d, "div", { class: "entry" }, [
        el(d, "div", { class: "title", text: `${entry.name}: ${stateText(entry)}` }),
        el(d, "div", { class: "meta", text: paramsLine(entry) }),
        el(d, "div", { class: "thumbs" }, results), use,
      ]);
      this.views[entry.id] = view;
      return view.root;
    }));
  }
}

module.exports = { ResultsBrowser, paramsLine };
