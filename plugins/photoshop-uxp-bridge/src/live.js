"use strict";
/**
 * Live mode: as the user paints, the layer is sent to a live session (POST /v1/live, frames
 * at /v1/live/{id}/frames) and each re-rendered frame replaces the pixels of an "aiedit live"
 * layer above, one history step per frame. Photoshop's change notifications
 * (action.addNotificationListener) drive it; frames go at most every `intervalMs`, one at a
 * time, and a canvas that did not change is not sent again. "Apply" copies the current frame
 * into a real layer.
 */

// Photoshop announces every new history state (a brush stroke, a fill, a transform...).
const EVENTS = ["historyStateChanged"];

/** FNV-1a over the bytes: cheap enough per frame, and equal pixels give equal hashes. */
function fingerprint(bytes) {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

class LiveMode {
  constructor({ photoshop, host, client, onStatus = () => {}, intervalMs = 250 }) {
    this.ps = photoshop;
    this.host = host;
    this.client = client;
    this.onStatus = onStatus;
    this.intervalMs = intervalMs;
    this.active = false;
    this.frames = 0;
    this.skipped = 0;
    this.pending = {};
    this.last = null;
    this.layerId = null;
    this.listener = () => this.changed();
  }

  /**
   * Opens a session for `operation` (generate or inpaint) with the form's params and renders
   * the active layer (inside the selection's bounds, or the whole canvas) once right away.
   */
  async start({ operation, model = null, params = {} }) {
    if (!["generate", "inpaint"].includes(operation.id)) {
      throw new Error("Live mode works with Generate and Inpaint: choose one of them.");
    }
    const doc = this.host.activeDocument();
    this.host.checkDocument(doc);
    const layer = this.host.activeLayer(doc);
    if (!layer || layer.layers) {
      throw new Error("Select the pixel layer you paint on first.");
    }
    const plan = await this.host.planRegion(doc, { regionKind: "selection", margin: 0 });
    let mask = null;
    if (operation.id === "inpaint" && plan.selection) {
      mask = (await this.host.readRegion(doc, { ...plan, source: "composite", wantMask: true }))
        .mask;
    }
    const rest = { ...params };
    delete rest.count; // a live session renders one frame at a time
    const session = await this.client.liveOpen({ operation: operation.id, model, params: rest });
    Object.assign(this, {
      doc, sourceId: layer.id, bounds: plan.bounds, mask, session, active: true,
      params: { ...session.params }, lastHash: null,
    });
    await this.ps.action.addNotificationListener(EVENTS, this.listener);
    this.onStatus(`Live: session open (seed ${session.params.seed}); paint on "${layer.name}".`);
    await this.frame();
  }

  /** A change in Photoshop: render again soon (at most every intervalMs, one at a time). */
  changed() {
    if (!this.active) {
      return;
    }
    this.dirty = true;
    if (!this.timer && !this.sending) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.frame();
      }, this.intervalMs);
    }
  }

  /** New params (prompt, strength, seed...) for the next frames; a frame follows. */
  setParams(changes) {
    if (!this.active) {
      return;
    }
    Object.assign(this.pending, changes);
    this.changed();
  }

  async frame() {
    if (!this.active) {
      return;
    }
    if (this.sending) {
      this.dirty = true;
      return;
    }
    this.dirty = false;
    this.sending = true;
    try {
      const { image } = await this.host.readLayers(this.doc, { image: this.sourceId },
        this.bounds);
      const hash = fingerprint(image);
      if (hash === this.lastHash && !Object.keys(this.pending).length) {
        this.skipped += 1;
        return;
      }
      const width = this.bounds.right - this.bounds.left;
      const height = this.bounds.bottom - this.bounds.top;
      const request = { region: { x: this.bounds.left, y: this.bounds.top, width, height } };
      const changes = this.pending;
      this.pending = {};
      if (Object.keys(changes).length) {
        request.params = changes;
      }
      const files = { image: { width, height, bytes: image } };
      if (this.mask) {
        files.mask = { width, height, bytes: this.mask };
      }
      const frame = await this.client.liveFrame(this.session.id, files, request);
      Object.assign(this.params, changes);
      if (!this.active) {
        return;
      }
      this.lastHash = hash;
      this.layerId = await this.host.writeLive(this.doc, this.layerId, frame);
      this.last = frame;
      this.frames += 1;
      this.onStatus(`Live: frame ${this.frames} (seed ${frame.seed}).`);
    } catch (err) {
      if (err.code === "superseded") {
        return; // a newer frame took its place
      }
      if (err.code === "live_session_closed" || err.code === "live_session_not_found") {
        await this.stop();
      }
      this.onStatus(`Live: ${err.message}`, true);
    } finally {
      this.sending = false;
      if (this.dirty && this.active) {
        this.changed();
      }
    }
  }

  /** Copies the current frame into a real layer (one history step); returns its id. */
  async apply() {
    if (!this.last) {
      throw new Error("No live frame yet.");
    }
    const prompt = this.params.prompt ? `: ${String(this.params.prompt).slice(0, 40)}` : "";
    // named like other results: "live: <prompt> seed <seed>"
    const applied = await this.host.applyResults(this.doc, [{ ...this.last, index: 0 }],
      { name: `live${prompt}` });
    return applied.layerIds[0];
  }

  /** Ends the session on the server and removes the live layer. */
  async stop() {
    if (!this.session) {
      return;
    }
    this.active = false;
    clearTimeout(this.timer);
    this.timer = null;
    await this.ps.action.removeNotificationListener(EVENTS, this.listener);
    const { session } = this;
    this.session = null;
    await this.client.liveClose(session.id).catch(() => {});
    if (this.layerId) {
      await this.host.clearPreview(this.doc.id, this.layerId);
      this.layerId = null;
    }
  }
}

module.exports = { LiveMode, fingerprint, EVENTS };
