"use strict";
/**
 * A stand-in for Photoshop's `photoshop` UXP module, for tests. It models documents, pixel
 * layers, the selection, history and modal scopes, and checks calls the way Adobe's
 * documentation says Photoshop does. Each check names the documented behaviour it mirrors
 * ("Imaging API" = ps_reference/media/imaging, "executeAsModal" = ps_reference/media/
 * executeasmodal, "Document"/"Selection" = ps_reference/classes). Behaviour the documentation
 * does not describe throws an error that says so, so a test never relies on a guess.
 */

const SRGB = "sRGB IEC61966-2.1";

// constants.AnchorPosition
const ANCHORS = {
  TOPLEFT: "topLeft", TOPCENTER: "topCenter", TOPRIGHT: "topRight",
  MIDDLELEFT: "middleLeft", MIDDLECENTER: "middleCenter", MIDDLERIGHT: "middleRight",
  BOTTOMLEFT: "bottomLeft", BOTTOMCENTER: "bottomCenter", BOTTOMRIGHT: "bottomRight",
};

class PhotoshopError extends Error {
  constructor(message, number = 1000) {
    super(message);
    this.number = number;
  }
}

function undocumented(what) {
  return new PhotoshopError(`stand-in: ${what} is not described by Adobe's documentation`);
}

function normalizeBounds(b, what) {
  if (!b || typeof b.left !== "number" || typeof b.top !== "number") {
    throw new PhotoshopError(`${what}: bounds need numeric left and top`);
  }
  // Imaging API: "left, top, right, and bottom" or "left, top, width, and height".
  if (typeof b.right === "number" && typeof b.bottom === "number") {
    return { left: b.left, top: b.top, right: b.right, bottom: b.bottom };
  }
  if (typeof b.width === "number" && typeof b.height === "number") {
    return { left: b.left, top: b.top, right: b.left + b.width, bottom: b.top + b.height };
  }
  throw new PhotoshopError(`${what}: bounds need right/bottom or width/height`);
}

function intersect(a, b) {
  return {
    left: Math.max(a.left, b.left), top: Math.max(a.top, b.top),
    right: Math.min(a.right, b.right), bottom: Math.min(a.bottom, b.bottom),
  };
}

function isEmpty(r) {
  return r.right <= r.left || r.bottom <= r.top;
}

/** A pixel buffer placed in document coordinates; RGBA, 8 bits. */
class Raster {
  constructor(bounds, data) {
    this.bounds = bounds;
    const pixels = (bounds.right - bounds.left) * (bounds.bottom - bounds.top);
    this.data = data || new Uint8Array(pixels * 4);
  }

  get width() {
    return this.bounds.right - this.bounds.left;
  }

  pixel(x, y) {
    const b = this.bounds;
    if (x < b.left || x >= b.right || y < b.top || y >= b.bottom) {
      return [0, 0, 0, 0];
    }
    const i = ((y - b.top) * this.width + (x - b.left)) * 4;
    return Array.from(this.data.subarray(i, i + 4));
  }

  /** Bounds of the pixels with alpha > 0, or null. */
  contentBounds() {
    let left = Infinity;
    let top = Infinity;
    let right = -Infinity;
    let bottom = -Infinity;
    const b = this.bounds;
    for (let y = b.top; y < b.bottom; y++) {
      for (let x = b.left; x < b.right; x++) {
        if (this.data[((y - b.top) * this.width + (x - b.left)) * 4 + 3] > 0) {
          left = Math.min(left, x);
          top = Math.min(top, y);
          right = Math.max(right, x + 1);
          bottom = Math.max(bottom, y + 1);
        }
      }
    }
    return left === Infinity ? null : { left, top, right, bottom };
  }

  clone() {
    return new Raster({ ...this.bounds }, new Uint8Array(this.data));
  }
}

class PhotoshopImageData {
  constructor({ width, height, components, colorSpace, colorProfile, data, chunky = true }) {
    this.width = width;
    this.height = height;
    this.components = components;
    this.componentSize = 8;
    this.colorSpace = colorSpace;
    this.colorProfile = colorProfile || "";
    this.hasAlpha = colorSpace === "Grayscale" ? components === 2 : components === 4;
    this.pixelFormat = pixelFormat(colorSpace, components);
    this.isChunky = chunky;
    this.type = "image/uncompressed";
    this.disposed = false;
    this.data = data;
  }

  /** Imaging API, getData: a typed array, chunky by default, planar with {chunky: false}. */
  async getData({ chunky = true } = {}) {
    this.checkAlive();
    const chunkyData = this.isChunky ? this.data : toChunky(this.data, this.components);
    return chunky ? new Uint8Array(chunkyData) : toPlanar(chunkyData, this.components);
  }

  /** Imaging API, dispose: releases the data; the instance cannot be used afterwards. */
  dispose() {
    this.disposed = true;
    this.data = null;
  }

  checkAlive() {
    if (this.disposed) {
      throw new PhotoshopError("PhotoshopImageData was disposed");
    }
  }

  chunkyData() {
    this.checkAlive();
    return this.isChunky ? this.data : toChunky(this.data, this.components);
  }
}

function pixelFormat(colorSpace, components) {
  if (colorSpace === "Grayscale") {
    return components === 2 ? "GrayscaleAlpha" : "Grayscale";
  }
  return components === 4 ? "RGBA" : "RGB";
}

function toPlanar(data, components) {
  const n = data.length / components;
  const out = new Uint8Array(data.length);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < components; c++) {
      out[c * n + i] = data[i * components + c];
    }
  }
  return out;
}

function toChunky(data, components) {
  const n = data.length / components;
  const out = new Uint8Array(data.length);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < components; c++) {
      out[i * components + c] = data[c * n + i];
    }
  }
  return out;
}

class Layer {
  constructor(doc, { name, kind = "pixel", isBackgroundLayer = false, raster = null }) {
    this.doc = doc;
    this.id = doc.standin.nextId();
    this._name = name;
    this.kind = kind;
    this.isBackgroundLayer = isBackgroundLayer;
    this.raster = raster;
    this.parent = null;
    this.children = kind === "group" ? [] : null;
  }

  get name() {
    return this._name;
  }

  /** Layer.name is writable; changing it changes the document, so it needs a modal scope. */
  set name(value) {
    this.doc.standin.requireModal("set");
    this._name = value;
    this.doc.recordChange("Rename Layer");
  }

  get layers() {
    return this.children;
  }

  /** Layer.boundsNoEffects: the bounds of the layer's pixels ({0,0,0,0} when empty). */
  get boundsNoEffects() {
    const content = this.raster ? this.raster.contentBounds() : null;
    return content || { left: 0, top: 0, right: 0, bottom: 0 };
  }

  get bounds() {
    return this.boundsNoEffects;
  }

  /** Test helper: the RGBA value at a document position. */
  pixelAt(x, y) {
    return this.raster ? this.raster.pixel(x, y) : [0, 0, 0, 0];
  }
}

class Document {
  constructor(standin, { width, height, name = "Untitled", background = null, layers = [] }) {
    this.standin = standin;
    this.id = standin.nextId();
    this.width = width;
    this.height = height;
    this.title = name;
    this.name = name;
    this.mode = "RGBColorMode";
    this.colorProfileName = SRGB;
    this.resolution = 72;
    this._layers = [];
    this.historyStates = [{ name: "Open" }];
    this.selectionMask = null;
    this.suspension = null;
    if (background) {
      const raster = new Raster({ left: 0, top: 0, right: width, bottom: height });
      fill(raster, background);
      this._layers.push(new Layer(this, { name: "Background", isBackgroundLayer: true, raster }));
    }
    for (const spec of layers) {
      this.addLayerNow(spec);
    }
    this.activeLayerList = this._layers.length ? [this._layers[0]] : [];
    if (standin.version >= 25) {
      this.selection = new Selection(this);
    }
  }

  /** Document.layers: top-level layers, top of the stack first. */
  get layers() {
    return this._layers;
  }

  get activeLayers() {
    return this.activeLayerList;
  }

  get backgroundLayer() {
    return this._layers.find((l) => l.isBackgroundLayer) || null;
  }

  /** Test helper: adds a pixel layer on top without a modal scope or history. */
  addLayerNow({ name, bounds, pixels }) {
    const raster = new Raster(bounds, pixels ? new Uint8Array(pixels) : null);
    const layer = new Layer(this, { name, raster });
    this._layers.unshift(layer);
    this.activeLayerList = [layer];
    return layer;
  }

  /** Test helper: sets the selection from a document-sized mask (or null to deselect). */
  setSelectionMask(mask) {
    this.selectionMask = mask && mask.some((v) => v > 0) ? mask : null;
  }

  /** Test helper: selects a rectangle fully. */
  selectRectangleNow(r) {
    const mask = new Uint8Array(this.width * this.height);
    for (let y = r.top; y < r.bottom; y++) {
      mask.fill(255, y * this.width + r.left, y * this.width + r.right);
    }
    this.setSelectionMask(mask);
  }

  selectionBounds() {
    if (!this.selectionMask) {
      return null;
    }
    const raster = new Raster({ left: 0, top: 0, right: this.width, bottom: this.height });
    for (let i = 0; i < this.selectionMask.length; i++) {
      raster.data[i * 4 + 3] = this.selectionMask[i];
    }
    return raster.contentBounds();
  }

  allLayers() {
    const out = [];
    const walk = (list) => {
      for (const l of list) {
        out.push(l);
        if (l.children) {
          walk(l.children);
        }
      }
    };
    walk(this._layers);
    return out;
  }

  layerById(id) {
    return this.allLayers().find((l) => l.id === id) || null;
  }

  /** Every change adds a history state, unless history is suspended (executeAsModal). */
  recordChange(name) {
    if (this.suspension) {
      this.suspension.modified = true;
      return;
    }
    this.historyStates.push({ name });
  }

  snapshot() {
    const copyLayer = (l) => {
      const c = Object.assign(Object.create(Layer.prototype), l);
      c.raster = l.raster ? l.raster.clone() : null;
      c.children = l.children ? l.children.map(copyLayer) : null;
      return c;
    };
    return { layers: this._layers.map(copyLayer), active: this.activeLayerList };
  }

  restore(snapshot) {
    this._layers = snapshot.layers;
    this.activeLayerList = snapshot.active;
  }

  /**
   * Document.createPixelLayer (24.1): a new, empty pixel layer above the active layer, which
   * becomes active. Modifies the document, so outside a modal scope it throws.
   */
  async createPixelLayer(options = {}) {
    this.standin.requireModal("make");
    const layer = new Layer(this, { name: options.name || `Layer ${this.allLayers().length + 1}`,
      raster: new Raster({ left: 0, top: 0, right: 0, bottom: 0 }) });
    const active = this.activeLayerList[0];
    const list = active && active.parent ? active.parent.children : this._layers;
    const at = active ? Math.max(0, list.indexOf(active)) : 0;
    list.splice(at, 0, layer);
    layer.parent = active ? active.parent : null;
    this.activeLayerList = [layer];
    this.recordChange("New Layer");
    return layer;
  }

  /**
   * Document.createLayerGroup (23.0): with `fromLayers` the given layers move into the new
   * group, which takes the place of the topmost of them.
   */
  async createLayerGroup(options = {}) {
    this.standin.requireModal("make");
    const group = new Layer(this, { name: options.name || "Group 1", kind: "group" });
    // Grouping keeps the layers' stacking order, whatever order fromLayers lists them in.
    const members = [...(options.fromLayers || [])]
      .sort((a, b) => this._layers.indexOf(a) - this._layers.indexOf(b));
    let at = 0;
    if (members.length) {
      at = Math.min(...members.map((l) => this._layers.indexOf(l)).filter((i) => i >= 0));
      if (!Number.isFinite(at)) {
        throw undocumented("grouping layers that are not at the top level");
      }
    }
    this._layers = this._layers.filter((l) => !members.includes(l));
    this._layers.splice(at, 0, group);
    group.children = [...members];
    for (const m of members) {
      m.parent = group;
    }
    this.activeLayerList = [group];
    this.recordChange("Group Layers");
    return group;
  }

  /**
   * Document.resizeCanvas(width, height, anchor): changes the canvas size, not the image;
   * the anchor (default: the middle) says where the old canvas stays. Layers keep their
   * pixels; the Background layer grows, filled with white (the default extension color).
   */
  async resizeCanvas(width, height, anchor = ANCHORS.MIDDLECENTER) {
    this.standin.requireModal("canvasSize");
    const dx = width - this.width;
    const dy = height - this.height;
    const horizontal = anchor.endsWith("Left") ? 0 : anchor.endsWith("Right") ? dx : dx / 2;
    const vertical = anchor.startsWith("top") ? 0 : anchor.startsWith("bottom") ? dy : dy / 2;
    if (!Number.isInteger(horizontal) || !Number.isInteger(vertical)) {
      throw undocumented("how an odd size change splits around a centered anchor");
    }
    for (const layer of this.allLayers()) {
      if (!layer.raster) {
        continue;
      }
      const b = layer.raster.bounds;
      layer.raster.bounds = { left: b.left + horizontal, top: b.top + vertical,
        right: b.right + horizontal, bottom: b.bottom + vertical };
      if (layer.isBackgroundLayer) {
        const grown = new Raster({ left: 0, top: 0, right: width, bottom: height });
        fill(grown, [255, 255, 255, 255]);
        layer.raster = merge(grown, layer.raster);
      }
    }
    if (this.selectionMask) {
      throw undocumented("the selection after resizeCanvas in this stand-in");
    }
    this.width = width;
    this.height = height;
    this.recordChange("Canvas Size");
  }

  /** Test helper: what the document shows, flattened (normal blending, visible layers). */
  compositePixel(x, y) {
    let out = [0, 0, 0, 0];
    const paint = (list) => {
      for (let i = list.length - 1; i >= 0; i--) {
        const l = list[i];
        if (l.children) {
          paint(l.children);
        } else {
          out = over(l.raster.pixel(x, y), out);
        }
      }
    };
    paint(this._layers);
    return out;
  }
}

function fill(raster, [r, g, b, a = 255]) {
  for (let i = 0; i < raster.data.length; i += 4) {
    raster.data.set([r, g, b, a], i);
  }
}

/** Porter-Duff "over" on 8-bit straight alpha. */
function over(top, bottom) {
  const ta = top[3] / 255;
  const ba = bottom[3] / 255;
  const a = ta + ba * (1 - ta);
  if (a === 0) {
    return [0, 0, 0, 0];
  }
  const mix = (c) => Math.round((top[c] * ta + bottom[c] * ba * (1 - ta)) / a);
  return [mix(0), mix(1), mix(2), Math.round(a * 255)];
}

class Selection {
  constructor(doc) {
    this.doc = doc;
  }

  /** Selection.bounds (25.0): the selection's bounding rectangle, null with no selection. */
  get bounds() {
    return this.doc.selectionBounds();
  }
}

class ExecutionContext {
  constructor(standin) {
    this.standin = standin;
    this.isCancelled = false;
    this.onCancel = null;
    this.progress = [];
    this.hostControl = {
      suspendHistory: (options) => standin.suspendHistory(options),
      resumeHistory: (suspension, commit = true) => standin.resumeHistory(suspension, commit),
      registerAutoCloseDocument: async () => {},
      unregisterAutoCloseDocument: async () => {},
    };
  }

  /** executeAsModal: reportProgress({value, commandName}) customizes the progress bar. */
  reportProgress({ value, commandName } = {}) {
    this.progress.push({ value, commandName });
  }
}

class Standin {
  constructor({ version = 25 } = {}) {
    this.version = version;
    this.ids = 100;
    this.documents = [];
    this.activeDocument = null;
    this.modalDepth = 0;
    this.modalScopes = [];
    this.calls = [];
    this.suspensions = new Map();
  }

  nextId() {
    this.ids += 1;
    return this.ids;
  }

  /** Test helper: opens a document and makes it active. */
  openDocument(spec) {
    const doc = new Document(this, spec);
    this.documents.push(doc);
    this.activeDocument = doc;
    return doc;
  }

  log(name, inModal = this.modalDepth > 0) {
    this.calls.push({ name, inModal });
  }

  /**
   * executeAsModal: "a modal state is required when a plugin wants to make modifications to
   * the Photoshop state"; outside it Photoshop answers "Event: <name> may modify the state of
   * Photoshop. Such events are only allowed from inside a modal scope".
   */
  requireModal(eventName) {
    this.log(eventName);
    if (this.modalDepth === 0) {
      throw new PhotoshopError(`Event: ${eventName} may modify the state of Photoshop. Such ` +
        "events are only allowed from inside a modal scope");
    }
  }

  documentFor(documentID) {
    // Imaging API: "If missing, or negative, then the source is the active document."
    if (documentID === undefined || documentID === null || documentID < 0) {
      if (!this.activeDocument) {
        throw new PhotoshopError("no active document");
      }
      return this.activeDocument;
    }
    const doc = this.documents.find((d) => d.id === documentID);
    if (!doc) {
      throw new PhotoshopError(`no document with id ${documentID}`);
    }
    return doc;
  }

  async executeAsModal(targetFunction, options) {
    // executeAsModal: commandName is required.
    if (!options || typeof options.commandName !== "string") {
      throw new PhotoshopError("executeAsModal: options.commandName is required");
    }
    // executeAsModal: "If another plugin is modal when you call executeAsModal, then
    // executeAsModal will raise an error" (number 9). Nested scopes of the same caller are
    // allowed; the stand-in has one plugin, so a second scope while one runs counts as nested
    // only when started from inside the running target function.
    const context = new ExecutionContext(this);
    this.modalDepth += 1;
    this.modalScopes.push(options.commandName);
    const openSuspensions = new Set(this.suspensions.keys());
    let failed = false;
    try {
      return await targetFunction(context, options.descriptor || {});
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      this.modalDepth -= 1;
      if (this.modalDepth === 0) {
        // executeAsModal: "When the modal scope ends, Photoshop will auto-resume history on
        // any document that is still in a suspended state": committed if the target function
        // returned normally, cancelled if it threw.
        for (const id of [...this.suspensions.keys()]) {
          if (!openSuspensions.has(id)) {
            this.finishSuspension(id, !failed);
          }
        }
      }
    }
  }

  /** hostControl.suspendHistory({documentID, name}) → {historySuspensionID}. */
  async suspendHistory({ documentID, name } = {}) {
    this.requireModal("suspendHistory");
    const doc = this.documentFor(documentID);
    if (doc.suspension) {
      throw undocumented("suspending history twice on one document");
    }
    const id = this.nextId();
    doc.suspension = { id, name, modified: false, snapshot: doc.snapshot() };
    this.suspensions.set(id, doc);
    return { historySuspensionID: id };
  }

  /**
   * hostControl.resumeHistory(suspension, commit = true): commit keeps the changes as one
   * history state (only if the document changed); commit false rolls them back.
   */
  async resumeHistory(suspension, commit = true) {
    this.requireModal("resumeHistory");
    const id = typeof suspension === "object" ? suspension.historySuspensionID : suspension;
    if (!this.suspensions.has(id)) {
      throw new PhotoshopError(`no history suspension with id ${id}`);
    }
    this.finishSuspension(id, commit, suspension && suspension.finalName);
  }

  finishSuspension(id, commit, finalName) {
    const doc = this.suspensions.get(id);
    this.suspensions.delete(id);
    const suspension = doc.suspension;
    doc.suspension = null;
    if (!commit) {
      doc.restore(suspension.snapshot);
      return;
    }
    if (suspension.modified) {
      doc.historyStates.push({ name: finalName || suspension.name });
    }
  }

  /**
   * Imaging API, getPixels. sourceBounds "will be trimmed to only that region that contains
   * pixel data" and the returned sourceBounds reflect that; without layerID the composite is
   * read. components are 4 when the source has alpha, 3 otherwise (Background layer, or a
   * composite of a document with a Background layer).
   */
  async getPixels(options) {
    this.log("getPixels");
    const doc = this.documentFor(options.documentID);
    if (options.targetSize) {
      throw undocumented("scaled reads (targetSize) in this stand-in");
    }
    if (options.componentSize !== undefined && ![8, -1].includes(options.componentSize)) {
      throw undocumented("componentSize other than 8 in this stand-in");
    }
    if (options.colorSpace && options.colorSpace !== "RGB") {
      throw undocumented("color conversion in this stand-in");
    }
    let content;
    let opaque;
    let read;
    if (options.layerID !== undefined) {
      const layer = doc.layerById(options.layerID);
      if (!layer) {
        throw new PhotoshopError(`getPixels: no layer with id ${options.layerID}`);
      }
      if (!layer.raster) {
        throw new PhotoshopError("getPixels: the layer is not a pixel layer");
      }
      content = layer.raster.contentBounds();
      opaque = layer.isBackgroundLayer;
      read = (x, y) => layer.raster.pixel(x, y);
    } else {
      content = { left: 0, top: 0, right: doc.width, bottom: doc.height };
      opaque = Boolean(doc.backgroundLayer);
      read = (x, y) => doc.compositePixel(x, y);
    }
    const requested = options.sourceBounds
      ? normalizeBounds(options.sourceBounds, "getPixels sourceBounds") : content;
    const bounds = content ? intersect(requested, content) : null;
    if (!bounds || isEmpty(bounds)) {
      throw undocumented("getPixels on a region without pixel data");
    }
    const components = opaque || options.applyAlpha ? 3 : 4;
    const data = readRect(bounds, components, read);
    return {
      imageData: new PhotoshopImageData({
        width: bounds.right - bounds.left, height: bounds.bottom - bounds.top, components,
        colorSpace: "RGB", colorProfile: doc.colorProfileName, data,
      }),
      sourceBounds: bounds,
      level: 0,
    };
  }

  /**
   * Imaging API, getSelection: the selection as one grayscale component per pixel over
   * sourceBounds (the whole selection when omitted).
   */
  async getSelection(options = {}) {
    this.log("getSelection");
    const doc = this.documentFor(options.documentID);
    if (options.targetSize) {
      throw undocumented("scaled reads (targetSize) in this stand-in");
    }
    if (!doc.selectionMask) {
      throw undocumented("getSelection without a selection");
    }
    const canvas = { left: 0, top: 0, right: doc.width, bottom: doc.height };
    const bounds = options.sourceBounds
      ? intersect(normalizeBounds(options.sourceBounds, "getSelection sourceBounds"), canvas)
      : doc.selectionBounds();
    if (isEmpty(bounds)) {
      throw undocumented("getSelection outside the canvas");
    }
    const w = bounds.right - bounds.left;
    const data = new Uint8Array(w * (bounds.bottom - bounds.top));
    for (let y = bounds.top; y < bounds.bottom; y++) {
      const row = doc.selectionMask.subarray(y * doc.width + bounds.left,
        y * doc.width + bounds.right);
      data.set(row, (y - bounds.top) * w);
    }
    return {
      imageData: new PhotoshopImageData({
        width: w, height: bounds.bottom - bounds.top, components: 1, colorSpace: "Grayscale",
        colorProfile: "Gray Gamma 2.2", data,
      }),
      sourceBounds: bounds,
    };
  }

  /**
   * Imaging API, createImageDataFromBuffer: width, height, components and colorSpace are
   * required; "The number of elements in imageData must be equal to: width * height *
   * components".
   */
  async createImageDataFromBuffer(buffer, options) {
    this.log("createImageDataFromBuffer");
    if (!(buffer instanceof Uint8Array)) {
      throw undocumented("buffers other than Uint8Array in this stand-in");
    }
    for (const key of ["width", "height", "components", "colorSpace"]) {
      if (options[key] === undefined) {
        throw new PhotoshopError(`createImageDataFromBuffer: options.${key} is required`);
      }
    }
    const { width, height, components, colorSpace } = options;
    if (buffer.length !== width * height * components) {
      throw new PhotoshopError(`createImageDataFromBuffer: buffer has ${buffer.length} ` +
        `elements, width * height * components is ${width * height * components}`);
    }
    const allowed = colorSpace === "RGB" ? [3, 4] : colorSpace === "Grayscale" ? [1, 2] : [];
    if (!allowed.includes(components)) {
      throw new PhotoshopError(`createImageDataFromBuffer: ${components} components do not ` +
        `fit color space ${colorSpace}`);
    }
    return new PhotoshopImageData({
      width, height, components, colorSpace, colorProfile: options.colorProfile,
      data: new Uint8Array(buffer), chunky: options.chunky !== false,
    });
  }

  /**
   * Imaging API, putPixels: layerID is required and must name a pixel layer; pixels go to
   * targetBounds {left, top} (the origin when omitted); replace (default true) discards the
   * layer's pixels first. It changes the document, so it needs a modal scope.
   */
  async putPixels(options) {
    this.requireModal("putPixels");
    const doc = this.documentFor(options.documentID);
    if (options.layerID === undefined) {
      throw new PhotoshopError("putPixels: layerID is required");
    }
    const layer = doc.layerById(options.layerID);
    if (!layer || !layer.raster) {
      throw new PhotoshopError(`putPixels: layer ${options.layerID} is not a pixel layer`);
    }
    const imageData = options.imageData;
    if (!(imageData instanceof PhotoshopImageData)) {
      throw new PhotoshopError("putPixels: imageData must come from the Imaging API");
    }
    if (imageData.colorSpace !== "RGB") {
      throw undocumented("putPixels of non-RGB data into an RGB document");
    }
    const left = options.targetBounds ? options.targetBounds.left : 0;
    const top = options.targetBounds ? options.targetBounds.top : 0;
    const placed = { left, top, right: left + imageData.width, bottom: top + imageData.height };
    const rgba = toRgba4(imageData.chunkyData(), imageData.components);
    const incoming = new Raster(placed, rgba);
    layer.raster = options.replace === false ? merge(layer.raster, incoming) : incoming;
    doc.recordChange(options.commandName || "Put Pixels");
  }

  /** action.batchPlay: only `get` of a document's `selection` property is modelled. */
  async batchPlay(commands) {
    this.log("batchPlay");
    return commands.map((command) => {
      const target = command._target || [];
      const property = target.find((t) => t._property);
      const docRef = target.find((t) => t._ref === "document");
      if (command._obj !== "get" || !property || property._property !== "selection" || !docRef) {
        throw undocumented(`batchPlay ${JSON.stringify(command)} in this stand-in`);
      }
      const doc = this.documentFor(docRef._id);
      const b = doc.selectionBounds();
      if (!b) {
        return {};
      }
      const px = (v) => ({ _unit: "pixelsUnit", _value: v });
      return {
        selection: {
          _obj: "rectangle", top: px(b.top), left: px(b.left), bottom: px(b.bottom),
          right: px(b.right),
        },
      };
    });
  }

  /** Photoshop.createDocument: a new document that becomes the active one. */
  async createDocument(options = {}) {
    this.requireModal("make");
    const doc = this.openDocument({
      width: options.width, height: options.height, name: options.name || "Untitled",
      background: options.fill === "transparent" ? null : [255, 255, 255, 255],
    });
    if (options.fill === "transparent") {
      doc.addLayerNow({ name: "Layer 1", bounds: { left: 0, top: 0, right: 0, bottom: 0 } });
    }
    return doc;
  }
}

function readRect(bounds, components, read) {
  const w = bounds.right - bounds.left;
  const data = new Uint8Array(w * (bounds.bottom - bounds.top) * components);
  for (let y = bounds.top; y < bounds.bottom; y++) {
    for (let x = bounds.left; x < bounds.right; x++) {
      const p = read(x, y);
      const i = ((y - bounds.top) * w + (x - bounds.left)) * components;
      for (let c = 0; c < components; c++) {
        data[i + c] = p[c];
      }
    }
  }
  return data;
}

function toRgba4(data, components) {
  if (components === 4) {
    return new Uint8Array(data);
  }
  const n = data.length / 3;
  const out = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    out.set([data[i * 3], data[i * 3 + 1], data[i * 3 + 2], 255], i * 4);
  }
  return out;
}

function merge(base, incoming) {
  const b = base.bounds;
  const i = incoming.bounds;
  const empty = b.right <= b.left || b.bottom <= b.top;
  const bounds = empty ? i : {
    left: Math.min(b.left, i.left), top: Math.min(b.top, i.top),
    right: Math.max(b.right, i.right), bottom: Math.max(b.bottom, i.bottom),
  };
  const out = new Raster(bounds);
  for (let y = bounds.top; y < bounds.bottom; y++) {
    for (let x = bounds.left; x < bounds.right; x++) {
      const p = over(incoming.pixel(x, y), base.pixel(x, y));
      out.data.set(p, ((y - bounds.top) * out.width + (x - bounds.left)) * 4);
    }
  }
  return out;
}

/**
 * Creates a fresh `photoshop` module. `version` (24 or 25) decides whether
 * Document.selection exists (it arrived in 25.0). The `standin` property is the test's handle.
 */
function createPhotoshop({ version = 25 } = {}) {
  const standin = new Standin({ version });
  const app = {
    get activeDocument() {
      return standin.activeDocument;
    },
    get documents() {
      return standin.documents;
    },
    createDocument: (options) => standin.createDocument(options),
  };
  return {
    app,
    core: {
      executeAsModal: (fn, options) => standin.executeAsModal(fn, options),
      showAlert: async () => {},
    },
    imaging: {
      getPixels: (o) => standin.getPixels(o),
      getSelection: (o) => standin.getSelection(o),
      createImageDataFromBuffer: (b, o) => standin.createImageDataFromBuffer(b, o),
      putPixels: (o) => standin.putPixels(o),
    },
    action: { batchPlay: (commands, options) => standin.batchPlay(commands, options) },
    constants: { AnchorPosition: ANCHORS },
    standin,
  };
}

module.exports = { createPhotoshop, PhotoshopError, PhotoshopImageData };
