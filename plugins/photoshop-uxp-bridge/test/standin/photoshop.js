"use strict";
/**
 * A stand-in for Photoshop's `photoshop` UXP module, for tests. It models documents (RGB with a
 * colour profile, Lab, CMYK; 8, 16 or 32 bits per channel), pixel layers with user masks, the
 * selection, history and modal scopes, and checks calls the way Adobe's documentation says
 * Photoshop does. Each check names the documented behaviour it mirrors ("Imaging API" =
 * ps_reference/media/imaging, "executeAsModal" = ps_reference/media/executeasmodal,
 * "Document"/"Layer"/"Selection" = ps_reference/classes, "constants" = ps_reference/modules/
 * constants). Behaviour the documentation does not describe throws an error that says so, so a
 * test never relies on a guess.
 *
 * Pixels are kept as numbers 0..1 per channel in the document's own colour space and profile,
 * rounded to the document's depth on every write, as Photoshop stores them.
 */

const colour = require("./colour");

const { SRGB } = colour;

// constants.AnchorPosition
const ANCHORS = {
  TOPLEFT: "topLeft", TOPCENTER: "topCenter", TOPRIGHT: "topRight",
  MIDDLELEFT: "middleLeft", MIDDLECENTER: "middleCenter", MIDDLERIGHT: "middleRight",
  BOTTOMLEFT: "bottomLeft", BOTTOMCENTER: "bottomCenter", BOTTOMRIGHT: "bottomRight",
};
// constants.DocumentMode / ChangeMode / NewDocumentMode and BitsPerChannelType: the names are
// documented; the values are opaque strings a plugin compares with the constants.
const MODES = {
  BITMAP: "bitmapMode", CMYK: "CMYKColorMode", DUOTONE: "duotoneMode",
  GRAYSCALE: "grayscaleMode", INDEXEDCOLOR: "indexedColorMode", LAB: "labColorMode",
  MULTICHANNEL: "multichannelMode", RGB: "RGBColorMode",
};
const BITS = { ONE: "bitDepth1", EIGHT: "bitDepth8", SIXTEEN: "bitDepth16", THIRTYTWO: "bitDepth32" };
const DEPTH_OF_BITS = { bitDepth8: 8, bitDepth16: 16, bitDepth32: 32 };
const BITS_OF_DEPTH = { 8: BITS.EIGHT, 16: BITS.SIXTEEN, 32: BITS.THIRTYTWO };
const COLOUR_CHANNELS = { [MODES.RGB]: 3, [MODES.LAB]: 3, [MODES.CMYK]: 4 };
const SHORT_MODES = { rgb: MODES.RGB, lab: MODES.LAB, cmyk: MODES.CMYK };

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

/** Imaging API value ranges: 8 bits 0..255, 16 bits 0..32768, 32 bits 0..1+. */
const RANGE = { 8: 255, 16: 32768 };

function quantize(v, depth) {
  return depth === 32 ? v : Math.round(Math.min(1, Math.max(0, v)) * RANGE[depth]) / RANGE[depth];
}

function toUnits(v, depth) {
  return depth === 32 ? v : Math.round(Math.min(1, Math.max(0, v)) * RANGE[depth]);
}

function typedArray(depth, length) {
  return depth === 8 ? new Uint8Array(length) : depth === 16 ? new Uint16Array(length)
    : new Float32Array(length);
}

function depthOfArray(array) {
  if (array instanceof Uint8Array) {
    return 8;
  }
  if (array instanceof Uint16Array) {
    return 16;
  }
  if (array instanceof Float32Array) {
    return 32;
  }
  return null;
}

/** Normalised copy (0..1) of a typed array in Imaging API units. */
function normalise(array) {
  const depth = depthOfArray(array);
  return depth === 32 ? new Float32Array(array) : Float32Array.from(array, (v) => v / RANGE[depth]);
}

/** A pixel buffer placed in document coordinates: `channels` colour channels plus alpha. */
class Raster {
  constructor(bounds, channels = 3, data = null) {
    this.bounds = bounds;
    this.channels = channels;
    const w = Math.max(0, bounds.right - bounds.left);
    const pixels = w * Math.max(0, bounds.bottom - bounds.top);
    this.data = data || new Float32Array(pixels * (channels + 1));
  }

  get width() {
    return this.bounds.right - this.bounds.left;
  }

  get stride() {
    return this.channels + 1;
  }

  /** Normalised channel values at a document position (all zero outside). */
  pixel(x, y) {
    const b = this.bounds;
    if (x < b.left || x >= b.right || y < b.top || y >= b.bottom) {
      return new Array(this.stride).fill(0);
    }
    const i = ((y - b.top) * this.width + (x - b.left)) * this.stride;
    return Array.from(this.data.subarray(i, i + this.stride));
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
        const i = ((y - b.top) * this.width + (x - b.left)) * this.stride;
        if (this.data[i + this.channels] > 0) {
          left = Math.min(left, x);
          top = Math.min(top, y);
          right = Math.max(right, x + 1);
          bottom = Math.max(bottom, y + 1);
        }
      }
    }
    return left === Infinity ? null : { left, top, right, bottom };
  }

  map(fn) {
    const out = new Raster({ ...this.bounds }, this.channels, new Float32Array(this.data));
    fn(out);
    return out;
  }

  clone() {
    return new Raster({ ...this.bounds }, this.channels, new Float32Array(this.data));
  }
}

/** A user (pixel) layer mask: values 0..1 over `bounds`, `outside` everywhere else. */
class UserMask {
  constructor(outside, bounds = { left: 0, top: 0, right: 0, bottom: 0 }, data = null) {
    this.outside = outside;
    this.bounds = bounds;
    const w = Math.max(0, bounds.right - bounds.left);
    this.data = data || new Float32Array(w * Math.max(0, bounds.bottom - bounds.top));
  }

  value(x, y) {
    const b = this.bounds;
    if (x < b.left || x >= b.right || y < b.top || y >= b.bottom) {
      return this.outside;
    }
    return this.data[(y - b.top) * (b.right - b.left) + (x - b.left)];
  }

  clone() {
    return new UserMask(this.outside, { ...this.bounds }, new Float32Array(this.data));
  }
}

class PhotoshopImageData {
  constructor({ width, height, components, componentSize, colorSpace, colorProfile, data,
    chunky = true }) {
    this.width = width;
    this.height = height;
    this.components = components;
    this.componentSize = componentSize;
    this.colorSpace = colorSpace;
    this.colorProfile = colorProfile || "";
    this.hasAlpha = colorSpace === "Grayscale" ? components === 2 : components === 4;
    this.pixelFormat = pixelFormat(colorSpace, components);
    this.isChunky = chunky;
    this.type = "image/uncompressed";
    this.disposed = false;
    this.data = data; // a typed array in Imaging API units
  }

  /**
   * Imaging API, getData: a typed array by componentSize (Uint8Array, Uint16Array,
   * Float32Array), chunky by default, planar with {chunky: false}; `fullRange` makes 16-bit
   * data 0..65535 instead of 0..32768.
   */
  async getData({ chunky = true, fullRange = false } = {}) {
    this.checkAlive();
    let data = this.isChunky ? this.data : toChunky(this.data, this.components);
    if (this.componentSize === 16 && fullRange) {
      data = Uint16Array.from(data, (v) => Math.round((v * 65535) / 32768));
    } else {
      data = data.slice();
    }
    return chunky ? data : toPlanar(data, this.components);
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

  /** Chunky values normalised to 0..1. */
  normalised() {
    this.checkAlive();
    return normalise(this.isChunky ? this.data : toChunky(this.data, this.components));
  }
}

function pixelFormat(colorSpace, components) {
  if (colorSpace === "Grayscale") {
    return components === 2 ? "GrayscaleAlpha" : "Grayscale";
  }
  if (colorSpace === "Lab") {
    return components === 4 ? "LABAlpha" : "LAB";
  }
  return components === 4 ? "RGBA" : "RGB";
}

function toPlanar(data, components) {
  const n = data.length / components;
  const out = new data.constructor(data.length);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < components; c++) {
      out[c * n + i] = data[i * components + c];
    }
  }
  return out;
}

function toChunky(data, components) {
  const n = data.length / components;
  const out = new data.constructor(data.length);
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
    this.userMask = null;
    this.parent = null;
    this.children = kind === "group" ? [] : null;
    this.deleted = false;
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

  /** Layer.delete(): removes the layer; a change to the document, so modal only. */
  async delete() {
    this.doc.standin.requireModal("delete");
    const list = this.parent ? this.parent.children : this.doc._layers;
    list.splice(list.indexOf(this), 1);
    this.deleted = true;
    this.doc.activeLayerList = this.doc.activeLayerList.filter((l) => l !== this);
    this.doc.recordChange("Delete Layer");
  }

  /** Test helper: the pixel at a document position in the document's units (8: 0..255). */
  pixelAt(x, y) {
    const values = this.raster ? this.raster.pixel(x, y) : [0, 0, 0, 0];
    return values.map((v) => toUnits(v, this.doc.depth));
  }

  /** Test helper: the user mask at a document position, 0..255 (null without a mask). */
  maskAt(x, y) {
    return this.userMask ? Math.round(this.userMask.value(x, y) * 255) : null;
  }
}

/** Reads a test's pixel array: Uint8Array 0..255, Uint16Array 0..32768, Float32Array 0..1. */
function rasterFrom(bounds, channels, pixels) {
  const raster = new Raster(bounds, channels);
  if (pixels) {
    raster.data.set(normalise(pixels));
  }
  return raster;
}

class Document {
  /**
   * Test spec: {width, height, name, background ([c...] in 8-bit units), layers, mode ("rgb",
   * "lab", "cmyk"), profile (RGB profile name), depth (8, 16, 32), resolution (ppi)}.
   */
  constructor(standin, { width, height, name = "Untitled", background = null, layers = [],
    mode = "rgb", profile = SRGB, depth = 8, resolution = 72 }) {
    this.standin = standin;
    this.id = standin.nextId();
    this.width = width;
    this.height = height;
    this.title = name;
    this.name = name;
    this._mode = SHORT_MODES[mode] || mode;
    if (!COLOUR_CHANNELS[this._mode]) {
      throw undocumented(`documents in mode ${mode} in this stand-in`);
    }
    this.profile = this._mode === MODES.RGB ? profile : null;
    if (this.profile && !colour.isRgbProfile(this.profile)) {
      throw undocumented(`the profile ${profile} in this stand-in`);
    }
    this.depth = depth;
    this.resolution = resolution;
    this._layers = [];
    this.historyStates = [{ name: "Open" }];
    this.selectionMask = null;
    this.suspension = null;
    this.closed = false;
    if (background) {
      const raster = new Raster({ left: 0, top: 0, right: width, bottom: height }, this.channels);
      fill(raster, [...background.slice(0, this.channels).map((v) => v / 255), 1]);
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

  get channels() {
    return COLOUR_CHANNELS[this._mode];
  }

  /** Document.mode: a constants.DocumentMode value. */
  get mode() {
    return this._mode;
  }

  /** Document.colorProfileName: the profile's name ("None" when the document has none). */
  get colorProfileName() {
    return this._mode === MODES.RGB ? this.profile : this._mode === MODES.LAB ? "Lab Color"
      : "Working CMYK";
  }

  /** Document.bitsPerChannel (read-write): a constants.BitsPerChannelType value. */
  get bitsPerChannel() {
    return BITS_OF_DEPTH[this.depth];
  }

  set bitsPerChannel(bits) {
    this.standin.requireModal("convertMode");
    const depth = DEPTH_OF_BITS[bits];
    if (!depth) {
      throw undocumented(`bitsPerChannel ${bits} in this stand-in`);
    }
    this.depth = depth;
    this.eachRaster((r) => r.data.forEach((v, i) => { r.data[i] = quantize(v, depth); }));
    this.recordChange("Convert Mode");
  }

  eachRaster(fn) {
    for (const layer of this.allLayers()) {
      if (layer.raster) {
        fn(layer.raster);
      }
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
    const layer = new Layer(this, { name, raster: rasterFrom(bounds, this.channels, pixels) });
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
    let left = Infinity;
    let top = Infinity;
    let right = -Infinity;
    let bottom = -Infinity;
    for (let y = 0; y < this.height; y++) {
      for (let x = 0; x < this.width; x++) {
        if (this.selectionMask[y * this.width + x] > 0) {
          left = Math.min(left, x);
          top = Math.min(top, y);
          right = Math.max(right, x + 1);
          bottom = Math.max(bottom, y + 1);
        }
      }
    }
    return { left, top, right, bottom };
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
      c.userMask = l.userMask ? l.userMask.clone() : null;
      c.children = l.children ? l.children.map(copyLayer) : null;
      return c;
    };
    return {
      layers: this._layers.map(copyLayer), active: this.activeLayerList,
      size: [this.width, this.height],
    };
  }

  restore(snapshot) {
    this._layers = snapshot.layers;
    this.activeLayerList = snapshot.active;
    [this.width, this.height] = snapshot.size;
  }

  /**
   * Document.createPixelLayer (24.1): a new, empty pixel layer above the active layer, which
   * becomes active. Modifies the document, so outside a modal scope it throws.
   */
  async createPixelLayer(options = {}) {
    this.standin.requireModal("make");
    const layer = new Layer(this, { name: options.name || `Layer ${this.allLayers().length + 1}`,
      raster: new Raster({ left: 0, top: 0, right: 0, bottom: 0 }, this.channels) });
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
    if (this.selectionMask) {
      throw undocumented("the selection after resizeCanvas in this stand-in");
    }
    this.shiftContent(horizontal, vertical);
    for (const layer of this.allLayers()) {
      if (layer.isBackgroundLayer) {
        const grown = new Raster({ left: 0, top: 0, right: width, bottom: height }, this.channels);
        fill(grown, this._mode === MODES.RGB ? [1, 1, 1, 1] : undefined);
        layer.raster = merge(grown, layer.raster);
      }
    }
    this.width = width;
    this.height = height;
    this.recordChange("Canvas Size");
  }

  shiftContent(dx, dy) {
    for (const layer of this.allLayers()) {
      for (const part of [layer.raster, layer.userMask]) {
        if (part) {
          const b = part.bounds;
          part.bounds = { left: b.left + dx, top: b.top + dy, right: b.right + dx,
            bottom: b.bottom + dy };
        }
      }
    }
  }

  /**
   * Document.crop(bounds): the canvas becomes `bounds`; content keeps its place relative to
   * the cropped area's top left corner.
   */
  async crop(bounds) {
    this.standin.requireModal("crop");
    const b = normalizeBounds(bounds, "crop");
    this.shiftContent(-b.left, -b.top);
    this.width = b.right - b.left;
    this.height = b.bottom - b.top;
    this.selectionMask = null;
    this.recordChange("Crop");
  }

  /**
   * Document.duplicate(name?, mergeLayersOnly?): a copy of the document that becomes the
   * active one.
   */
  async duplicate(name, mergeLayersOnly = false) {
    this.standin.requireModal("duplicate");
    if (mergeLayersOnly) {
      throw undocumented("duplicate with mergeLayersOnly in this stand-in");
    }
    const copy = new Document(this.standin, {
      width: this.width, height: this.height, name: name || `${this.title} copy`,
      mode: this._mode, profile: this.profile || SRGB, depth: this.depth,
      resolution: this.resolution,
    });
    const snapshot = this.snapshot();
    const rebind = (l) => {
      l.doc = copy;
      l.id = this.standin.nextId();
      (l.children || []).forEach(rebind);
    };
    snapshot.layers.forEach(rebind);
    copy._layers = snapshot.layers;
    copy.activeLayerList = copy._layers.length ? [copy._layers[0]] : [];
    copy.selectionMask = this.selectionMask ? new Uint8Array(this.selectionMask) : null;
    this.standin.documents.push(copy);
    this.standin.activeDocument = copy;
    return copy;
  }

  /**
   * Document.changeMode(mode): converts the document to another colour mode; to RGB the
   * pixels are converted into the working RGB profile (sRGB in the stand-in).
   */
  async changeMode(mode) {
    this.standin.requireModal("convertMode");
    if (mode === this._mode) {
      return;
    }
    if (mode !== MODES.RGB) {
      throw undocumented(`changeMode to ${mode} in this stand-in`);
    }
    const from = this._mode;
    const convert = from === MODES.LAB ? (c) => colour.labToRgb(c, SRGB) : colour.cmykToRgb;
    for (const layer of this.allLayers()) {
      if (!layer.raster) {
        continue;
      }
      const src = layer.raster;
      const out = new Raster({ ...src.bounds }, 3);
      const n = src.data.length / src.stride;
      for (let i = 0; i < n; i++) {
        const c = Array.from(src.data.subarray(i * src.stride, i * src.stride + src.channels));
        const rgb = convert(c).map((v) => quantize(v, this.depth));
        out.data.set([...rgb, src.data[i * src.stride + src.channels]], i * 4);
      }
      layer.raster = out;
    }
    this._mode = MODES.RGB;
    this.profile = SRGB;
    this.recordChange("Convert Mode");
  }

  /** Document.closeWithoutSaving(): closes the document, discarding changes. */
  closeWithoutSaving() {
    this.closed = true;
    this.standin.documents.splice(this.standin.documents.indexOf(this), 1);
    if (this.standin.activeDocument === this) {
      this.standin.activeDocument = this.standin.documents.at(-1) || null;
    }
  }

  /** Test helper: what the document shows, flattened, in the document's units. */
  compositePixel(x, y) {
    return this.compositeValues(x, y).map((v) => toUnits(v, this.depth));
  }

  /** Normal blending of the visible layers, masks applied, as normalised values. */
  compositeValues(x, y) {
    let out = new Array(this.channels + 1).fill(0);
    const paint = (list) => {
      for (let i = list.length - 1; i >= 0; i--) {
        const l = list[i];
        if (l.visible === false) {
          continue;
        }
        if (l.children) {
          paint(l.children);
        } else {
          const p = l.raster.pixel(x, y);
          if (l.userMask) {
            p[this.channels] *= l.userMask.value(x, y);
          }
          out = over(p, out);
        }
      }
    };
    paint(this._layers);
    return out;
  }
}

function fill(raster, values) {
  if (!values) {
    return;
  }
  for (let i = 0; i < raster.data.length; i += raster.stride) {
    raster.data.set(values, i);
  }
}

/** Porter-Duff "over" on straight alpha (the last value is alpha). */
function over(top, bottom) {
  const n = top.length - 1;
  const ta = top[n];
  const ba = bottom[n];
  const a = ta + ba * (1 - ta);
  if (a === 0) {
    return new Array(n + 1).fill(0);
  }
  const out = [];
  for (let c = 0; c < n; c++) {
    out.push((top[c] * ta + bottom[c] * ba * (1 - ta)) / a);
  }
  out.push(a);
  return out;
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
   * composite of a document with a Background layer). `colorSpace`/`colorProfile` convert the
   * pixels ("If omitted, then the color space of the source document is used"; a requested
   * colour space other than the document's without a profile uses the working profile),
   * `componentSize` (8, 16, 32, or -1/omitted for the document's depth) sets the depth.
   */
  async getPixels(options) {
    this.log("getPixels");
    const doc = this.documentFor(options.documentID);
    if (options.targetSize) {
      throw undocumented("scaled reads (targetSize) in this stand-in");
    }
    const size = options.componentSize === undefined || options.componentSize === -1
      ? doc.depth : options.componentSize;
    if (![8, 16, 32].includes(size)) {
      throw new PhotoshopError(`getPixels: componentSize ${options.componentSize} is not one of ` +
        "-1, 8, 16, 32");
    }
    const convert = this.readConversion(doc, options);
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
      read = (x, y) => doc.compositeValues(x, y);
    }
    const requested = options.sourceBounds
      ? normalizeBounds(options.sourceBounds, "getPixels sourceBounds") : content;
    const bounds = content ? intersect(requested, content) : null;
    if (!bounds || isEmpty(bounds)) {
      throw undocumented("getPixels on a region without pixel data");
    }
    const colours = convert.channels;
    const components = opaque || options.applyAlpha ? colours : colours + 1;
    const w = bounds.right - bounds.left;
    const data = typedArray(size, w * (bounds.bottom - bounds.top) * components);
    for (let y = bounds.top; y < bounds.bottom; y++) {
      for (let x = bounds.left; x < bounds.right; x++) {
        const p = read(x, y);
        const alpha = p[p.length - 1];
        let c = convert.fn(p.slice(0, p.length - 1));
        if (options.applyAlpha) {
          c = c.map((v) => v * alpha + (1 - alpha)); // matted on white
        }
        const values = components > colours ? [...c, alpha] : c;
        const i = ((y - bounds.top) * w + (x - bounds.left)) * components;
        values.forEach((v, k) => { data[i + k] = toUnits(v, size); });
      }
    }
    return {
      imageData: new PhotoshopImageData({
        width: w, height: bounds.bottom - bounds.top, components, componentSize: size,
        colorSpace: convert.colorSpace, colorProfile: convert.colorProfile, data,
      }),
      sourceBounds: bounds,
      level: 0,
    };
  }

  /** How getPixels turns a document's pixels into the requested colour space and profile. */
  readConversion(doc, { colorSpace, colorProfile }) {
    const space = colorSpace || (doc.mode === MODES.RGB ? "RGB" : doc.mode === MODES.LAB ? "Lab"
      : "CMYK");
    if (space === "RGB") {
      const profile = colorProfile || (doc.mode === MODES.RGB ? doc.profile : SRGB);
      if (!colour.isRgbProfile(profile)) {
        throw new PhotoshopError(`getPixels: unknown color profile ${JSON.stringify(profile)}`);
      }
      const fn = doc.mode === MODES.RGB ? (c) => colour.rgbToRgb(c, doc.profile, profile)
        : doc.mode === MODES.LAB ? (c) => colour.labToRgb(c, profile)
          : (c) => colour.rgbToRgb(colour.cmykToRgb(c), SRGB, profile);
      return { channels: 3, colorSpace: "RGB", colorProfile: profile, fn };
    }
    if (space === "Lab") {
      const fn = doc.mode === MODES.LAB ? (c) => c
        : doc.mode === MODES.RGB ? (c) => colour.rgbToLab(c, doc.profile) : null;
      if (!fn) {
        throw undocumented("Lab reads of a CMYK document in this stand-in");
      }
      return { channels: 3, colorSpace: "Lab", colorProfile: colour.LAB, fn };
    }
    // PhotoshopImageData.colorSpace: "This can be RGB, Grayscale, Lab" — CMYK data is not
    // described.
    throw undocumented(`getPixels in color space ${space}`);
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
        width: w, height: bounds.bottom - bounds.top, components: 1, componentSize: 8,
        colorSpace: "Grayscale", colorProfile: "Gray Gamma 2.2", data,
      }),
      sourceBounds: bounds,
    };
  }

  /**
   * Imaging API, createImageDataFromBuffer: the array type sets componentSize (Uint8Array 8,
   * Uint16Array 16, Float32Array 32); width, height, components and colorSpace are required;
   * "The number of elements in imageData must be equal to: width * height * components";
   * `fullRange` says 16-bit data uses 0..65535 instead of 0..32768.
   */
  async createImageDataFromBuffer(buffer, options) {
    this.log("createImageDataFromBuffer");
    const size = depthOfArray(buffer);
    if (!size) {
      throw new PhotoshopError("createImageDataFromBuffer: the buffer must be a Uint8Array, " +
        "Uint16Array or Float32Array");
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
    const allowed = { RGB: [3, 4], Lab: [3, 4], Grayscale: [1, 2] }[colorSpace] || [];
    if (!allowed.includes(components)) {
      throw new PhotoshopError(`createImageDataFromBuffer: ${components} components do not ` +
        `fit color space ${colorSpace}`);
    }
    if (options.colorProfile && colorSpace === "RGB" && !colour.isRgbProfile(options.colorProfile)) {
      throw new PhotoshopError("createImageDataFromBuffer: unknown color profile " +
        JSON.stringify(options.colorProfile));
    }
    let data = buffer.slice();
    if (size === 16 && options.fullRange) {
      data = Uint16Array.from(buffer, (v) => Math.round((v * 32768) / 65535));
    }
    return new PhotoshopImageData({
      width, height, components, componentSize: size, colorSpace,
      colorProfile: options.colorProfile, data, chunky: options.chunky !== false,
    });
  }

  /**
   * Imaging API, putPixels: layerID is required and must name a pixel layer; pixels go to
   * targetBounds {left, top} (the origin when omitted); replace (default true) discards the
   * layer's pixels first. It changes the document, so it needs a modal scope. Photoshop
   * converts the data from its colorProfile ("If the color profile is empty, then the profile
   * of a target document will be used") into the document's.
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
    if (doc.mode !== MODES.RGB || imageData.colorSpace !== "RGB") {
      throw undocumented(`putPixels of ${imageData.colorSpace} data into a document in ` +
        `${doc.mode}`);
    }
    if (imageData.componentSize !== doc.depth) {
      throw undocumented(`putPixels of ${imageData.componentSize}-bit data into a ` +
        `${doc.depth}-bit document`);
    }
    const from = imageData.colorProfile || doc.profile;
    const left = options.targetBounds ? options.targetBounds.left : 0;
    const top = options.targetBounds ? options.targetBounds.top : 0;
    const placed = { left, top, right: left + imageData.width, bottom: top + imageData.height };
    const values = imageData.normalised();
    const comps = imageData.components;
    const incoming = new Raster(placed, 3);
    for (let i = 0; i < imageData.width * imageData.height; i++) {
      const rgb = colour.rgbToRgb(Array.from(values.subarray(i * comps, i * comps + 3)), from,
        doc.profile).map((v) => quantize(v, doc.depth));
      incoming.data.set([...rgb, comps === 4 ? values[i * comps + 3] : 1], i * 4);
    }
    layer.raster = options.replace === false ? merge(layer.raster, incoming) : incoming;
    doc.recordChange(options.commandName || "Put Pixels");
  }

  /**
   * Imaging API, getLayerMask: the user mask as one grayscale component over sourceBounds
   * (the whole mask when omitted).
   */
  async getLayerMask(options) {
    this.log("getLayerMask");
    const doc = this.documentFor(options.documentID);
    const layer = doc.layerById(options.layerID);
    if ((options.kind || "user") !== "user") {
      throw undocumented("vector masks in this stand-in");
    }
    if (!layer || !layer.userMask) {
      throw undocumented("getLayerMask of a layer without a user mask");
    }
    const bounds = options.sourceBounds
      ? normalizeBounds(options.sourceBounds, "getLayerMask sourceBounds") : layer.userMask.bounds;
    const w = bounds.right - bounds.left;
    const data = typedArray(doc.depth, w * (bounds.bottom - bounds.top));
    for (let y = bounds.top; y < bounds.bottom; y++) {
      for (let x = bounds.left; x < bounds.right; x++) {
        data[(y - bounds.top) * w + (x - bounds.left)] = toUnits(layer.userMask.value(x, y),
          doc.depth);
      }
    }
    return {
      imageData: new PhotoshopImageData({
        width: w, height: bounds.bottom - bounds.top, components: 1, componentSize: doc.depth,
        colorSpace: "Grayscale", colorProfile: "Gray Gamma 2.2", data,
      }),
      sourceBounds: bounds,
    };
  }

  /**
   * Imaging API, putLayerMask: edits the pixels of a layer's user mask ("At this time, only
   * pixel masks are editable"); imageData "must be image data with a single component using
   * the grayscale color model"; replace (default true) discards the existing mask values
   * first; targetBounds {left, top}. Whether it makes a mask on a layer without one is not
   * documented, so the stand-in asks for the mask to exist (made with the "Add Layer Mask"
   * action through batchPlay).
   */
  async putLayerMask(options) {
    this.requireModal("putLayerMask");
    const doc = this.documentFor(options.documentID);
    if (options.layerID === undefined) {
      throw new PhotoshopError("putLayerMask: layerID is required");
    }
    if ((options.kind || "user") !== "user") {
      throw new PhotoshopError("putLayerMask: only \"user\" masks are accepted");
    }
    const layer = doc.layerById(options.layerID);
    if (!layer || !layer.raster) {
      throw new PhotoshopError(`putLayerMask: layer ${options.layerID} is not a pixel layer`);
    }
    if (!layer.userMask) {
      throw undocumented("putLayerMask on a layer without a user mask");
    }
    const imageData = options.imageData;
    if (!(imageData instanceof PhotoshopImageData) || imageData.components !== 1 ||
        imageData.colorSpace !== "Grayscale") {
      throw new PhotoshopError("putLayerMask: imageData must have a single Grayscale component");
    }
    const left = options.targetBounds ? options.targetBounds.left : 0;
    const top = options.targetBounds ? options.targetBounds.top : 0;
    const placed = { left, top, right: left + imageData.width, bottom: top + imageData.height };
    const values = imageData.normalised().map((v) => quantize(v, doc.depth));
    const old = layer.userMask;
    if (options.replace === false) {
      const b = old.bounds;
      const empty = isEmpty(b);
      const bounds = empty ? placed : {
        left: Math.min(b.left, placed.left), top: Math.min(b.top, placed.top),
        right: Math.max(b.right, placed.right), bottom: Math.max(b.bottom, placed.bottom),
      };
      const mask = new UserMask(old.outside, bounds);
      const w = bounds.right - bounds.left;
      for (let y = bounds.top; y < bounds.bottom; y++) {
        for (let x = bounds.left; x < bounds.right; x++) {
          const inside = x >= placed.left && x < placed.right && y >= placed.top &&
            y < placed.bottom;
          mask.data[(y - bounds.top) * w + (x - bounds.left)] = inside
            ? values[(y - top) * imageData.width + (x - left)] : old.value(x, y);
        }
      }
      layer.userMask = mask;
    } else {
      layer.userMask = new UserMask(old.outside, placed, Float32Array.from(values));
    }
    doc.recordChange(options.commandName || "Edit Layer Mask");
  }

  /**
   * Imaging API, encodeImageData({imageData, base64}): JPEG data for an <img>; RGB only.
   * The stand-in's "JPEG" is a marker plus the size, base64-encoded.
   */
  async encodeImageData({ imageData, base64 = false } = {}) {
    this.log("encodeImageData");
    if (!(imageData instanceof PhotoshopImageData) || imageData.colorSpace !== "RGB") {
      throw new PhotoshopError("encodeImageData: imageData must be RGB image data");
    }
    imageData.checkAlive();
    const bytes = Array.from(Buffer.from(`JPEG ${imageData.width}x${imageData.height}`));
    return base64 ? Buffer.from(bytes).toString("base64") : bytes;
  }

  /**
   * action.batchPlay. Modelled descriptors: `get` of a document's `selection`; `select` of a
   * layer by id; `make` of a user mask on the target layer (the "Add Layer Mask" action:
   * new channel at the mask, using revealAll or hideAll). Anything else throws.
   */
  async batchPlay(commands) {
    this.log("batchPlay");
    const answers = [];
    for (const command of commands) {
      answers.push(this.playOne(command));
    }
    return answers;
  }

  playOne(command) {
    const target = command._target || [];
    if (command._obj === "get") {
      const property = target.find((t) => t._property);
      const docRef = target.find((t) => t._ref === "document");
      if (!property || property._property !== "selection" || !docRef) {
        throw undocumented(`batchPlay ${JSON.stringify(command)} in this stand-in`);
      }
      const b = this.documentFor(docRef._id).selectionBounds();
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
    }
    if (command._obj === "select" && target.length === 1 && target[0]._ref === "layer") {
      this.requireModal("select");
      const doc = this.documentFor(-1);
      const layer = doc.layerById(target[0]._id);
      if (!layer) {
        throw new PhotoshopError(`select: no layer with id ${target[0]._id}`);
      }
      doc.activeLayerList = [layer];
      return {};
    }
    const at = command.at || {};
    const using = command.using || {};
    if (command._obj === "make" && command.new && command.new._class === "channel" &&
        at._ref === "channel" && at._value === "mask" && using._enum === "userMaskEnabled" &&
        ["revealAll", "hideAll"].includes(using._value)) {
      this.requireModal("make");
      const doc = this.documentFor(-1);
      const layer = doc.activeLayerList[0];
      if (!layer || !layer.raster || layer.isBackgroundLayer) {
        throw new PhotoshopError("make: the target layer cannot take a layer mask");
      }
      if (layer.userMask) {
        throw undocumented("adding a layer mask to a layer that has one");
      }
      layer.userMask = new UserMask(using._value === "revealAll" ? 1 : 0);
      doc.recordChange("Add Layer Mask");
      return {};
    }
    throw undocumented(`batchPlay ${JSON.stringify(command)} in this stand-in`);
  }

  /**
   * Photoshop.createDocument(DocumentCreateOptions): width, height, resolution, mode, fill,
   * profile, depth. A new document that becomes the active one.
   */
  async createDocument(options = {}) {
    this.requireModal("make");
    if (options.mode && options.mode !== MODES.RGB) {
      throw undocumented(`createDocument in mode ${options.mode} in this stand-in`);
    }
    const doc = this.openDocument({
      width: options.width, height: options.height, name: options.name || "Untitled",
      background: options.fill === "transparent" ? null : [255, 255, 255, 255],
      profile: options.profile || SRGB, depth: options.depth || 8,
      resolution: options.resolution || 72,
    });
    if (options.fill === "transparent") {
      doc.addLayerNow({ name: "Layer 1", bounds: { left: 0, top: 0, right: 0, bottom: 0 } });
    }
    return doc;
  }
}

function merge(base, incoming) {
  const b = base.bounds;
  const i = incoming.bounds;
  const empty = b.right <= b.left || b.bottom <= b.top;
  const bounds = empty ? i : {
    left: Math.min(b.left, i.left), top: Math.min(b.top, i.top),
    right: Math.max(b.right, i.right), bottom: Math.max(b.bottom, i.bottom),
  };
  const out = new Raster(bounds, base.channels);
  for (let y = bounds.top; y < bounds.bottom; y++) {
    for (let x = bounds.left; x < bounds.right; x++) {
      const p = over(incoming.pixel(x, y), base.pixel(x, y));
      out.data.set(p, ((y - bounds.top) * out.width + (x - bounds.left)) * out.stride);
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
  const listeners = [];
  standin.notify = (event, descriptor = {}) => {
    for (const l of listeners) {
      if (l.events.includes(event)) {
        l.handler(event, descriptor);
      }
    }
  };
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
      getLayerMask: (o) => standin.getLayerMask(o),
      createImageDataFromBuffer: (b, o) => standin.createImageDataFromBuffer(b, o),
      putPixels: (o) => standin.putPixels(o),
      putLayerMask: (o) => standin.putLayerMask(o),
      encodeImageData: (o) => standin.encodeImageData(o),
    },
    action: {
      batchPlay: (commands, options) => standin.batchPlay(commands, options),
      /** action.addNotificationListener(events, handler): handler(event, descriptor). */
      addNotificationListener: async (events, handler) => {
        listeners.push({ events, handler });
      },
      removeNotificationListener: async (events, handler) => {
        const i = listeners.findIndex((l) => l.handler === handler);
        if (i >= 0) {
          listeners.splice(i, 1);
        }
      },
    },
    constants: {
      AnchorPosition: ANCHORS, DocumentMode: MODES, ChangeMode: MODES, NewDocumentMode: MODES,
      BitsPerChannelType: BITS,
    },
    standin,
  };
}

module.exports = { createPhotoshop, PhotoshopError, PhotoshopImageData, colour };
