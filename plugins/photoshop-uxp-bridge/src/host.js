"use strict";
/**
 * The Photoshop side: reads the region a job needs and writes results as new layers.
 * Only pixel reads and writes happen inside `core.executeAsModal`; everything that waits on
 * the network happens outside it, so Photoshop stays usable while a job runs.
 */

const geo = require("./geometry");
const { toRgba, placeInto, hasSelectedPixel, toDepth, to8, maskTo8 } = require("./pixels");

/** What the server reads and writes: 8-bit sRGB (docs/http-api.md, "Images"). */
const SRGB = "sRGB IEC61966-2.1";
/** Imaging API: masks and selections are one Grayscale component in "Gray Gamma 2.2". */
const GRAY = "Gray Gamma 2.2";
const PREVIEW_NAME = "aiedit preview";
const LIVE_NAME = "aiedit live";
const THUMB_SIDE = 96;
const MODE_NAMES = {
  BITMAP: "Bitmap", CMYK: "CMYK", DUOTONE: "Duotone", GRAYSCALE: "Grayscale",
  INDEXEDCOLOR: "Indexed Color", LAB: "Lab", MULTICHANNEL: "Multichannel",
};

/** A document the panel cannot work on as it is; `copyHelps` says an RGB copy would do. */
class DocumentError extends Error {
  constructor(message, code, copyHelps = false) {
    super(message);
    this.name = "DocumentError";
    this.code = code;
    this.copyHelps = copyHelps;
  }
}

function rectFromDescriptor(d) {
  return geo.rect(d.left._value ?? d.left, d.top._value ?? d.top,
    d.right._value ?? d.right, d.bottom._value ?? d.bottom);
}

class PhotoshopHost {
  /** @param {object} photoshop the `require("photoshop")` module */
  constructor(photoshop) {
    this.ps = photoshop;
    this.imaging = photoshop.imaging || photoshop.imaging_beta;
  }

  activeDocument() {
    const doc = this.ps.app.activeDocument;
    if (!doc) {
      throw new Error("Open a document first.");
    }
    return doc;
  }

  /** The open document with this id, or null once it was closed. */
  documentById(id) {
    return Array.from(this.ps.app.documents || []).find((d) => d.id === id) || null;
  }

  /** 8, 16 or 32: the document's bits per channel. */
  depth(doc) {
    const bits = this.ps.constants.BitsPerChannelType;
    if (doc.bitsPerChannel === bits.SIXTEEN) {
      return 16;
    }
    return doc.bitsPerChannel === bits.THIRTYTWO ? 32 : 8;
  }

  /** The document's RGB profile name, or null when it has none ("None"). */
  profile(doc) {
    const name = doc.colorProfileName;
    return name && name !== "None" ? name.replace(/\s*\(Linear RGB Profile\)$/, "") : null;
  }

  /**
   * Refuses documents whose pixels cannot travel as RGB both ways: other colour modes (CMYK,
   * Lab, Grayscale, Indexed...) and 32-bit HDR documents. Photoshop converts RGB documents of
   * any profile to and from sRGB itself, so those need nothing.
   */
  checkDocument(doc) {
    const modes = this.ps.constants.DocumentMode;
    if (doc.mode !== modes.RGB) {
      const key = Object.keys(modes).find((k) => modes[k] === doc.mode);
      const mode = MODE_NAMES[key] || String(doc.mode);
      throw new DocumentError(`"${doc.title}" is a ${mode} document: aiedit works on RGB ` +
        "pixels. Press \"Work on an RGB copy\" (the original stays as it is) or convert it " +
        "with Image > Mode > RGB Color.", "document_mode", true);
    }
    if (this.depth(doc) === 32) {
      throw new DocumentError(`"${doc.title}" has 32 bits per channel (HDR): aiedit works on ` +
        "8 and 16 bits. Press \"Work on an RGB copy\" for a 16-bit copy, or convert it with " +
        "Image > Mode > 16 Bits/Channel.", "document_depth", true);
    }
  }

  /**
   * A duplicate of `doc` that the panel can work on: RGB (Photoshop converts it with its own
   * engine), at most 16 bits per channel. The duplicate becomes the active document.
   */
  async workingCopy(doc) {
    const { ChangeMode, DocumentMode, BitsPerChannelType } = this.ps.constants;
    return this.ps.core.executeAsModal(async () => {
      const copy = await doc.duplicate(`${doc.title} (RGB)`);
      if (copy.mode !== DocumentMode.RGB) {
        await copy.changeMode(ChangeMode.RGB);
      }
      if (this.depth(copy) === 32) {
        copy.bitsPerChannel = BitsPerChannelType.SIXTEEN;
      }
      return copy;
    }, { commandName: "aiedit: RGB copy" });
  }

  canvas(doc) {
    return geo.rect(0, 0, doc.width, doc.height);
  }

  /** The selection's bounds clipped to the canvas, or null without a selection. */
  async selectionBounds(doc) {
    let bounds;
    if (doc.selection !== undefined) {
      bounds = doc.selection.bounds; // Photoshop 25.0+: null without a selection
    } else {
      bounds = await this.selectionBoundsFromAction(doc); // 24.x: ask with batchPlay
    }
    if (!bounds) {
      return null;
    }
    const clipped = geo.intersect(geo.toPixels(geo.normalize(bounds)), this.canvas(doc));
    return geo.isEmpty(clipped) ? null : clipped;
  }

  async selectionBoundsFromAction(doc) {
    const [answer] = await this.ps.action.batchPlay([{
      _obj: "get",
      _target: [{ _property: "selection" }, { _ref: "document", _id: doc.id }],
    }], {});
    return answer && answer.selection ? rectFromDescriptor(answer.selection) : null;
  }

  activeLayer(doc) {
    const layers = doc.activeLayers;
    return layers && layers.length ? layers[0] : null;
  }

  /**
   * Decides which document rectangle a job reads.
   * `regionKind` is "selection" (selection bounds grown by `margin`, whole canvas without a
   * selection) or "layer" (the active layer's bounds, or the canvas for the composite).
   */
  async planRegion(doc, { regionKind, source, margin = 0 }) {
    const canvas = this.canvas(doc);
    const selection = await this.selectionBounds(doc);
    if (regionKind === "selection") {
      const bounds = selection ? geo.grow(selection, margin, canvas) : canvas;
      return { bounds, selection };
    }
    const layer = source === "layer" ? this.activeLayer(doc) : null;
    if (layer && layer.boundsNoEffects) {
      const layerBounds = geo.intersect(geo.normalize(layer.boundsNoEffects), canvas);
      if (!geo.isEmpty(layerBounds)) {
        return { bounds: layerBounds, selection };
      }
    }
    return { bounds: canvas, selection };
  }

  /** The document's pixel layers (groups' members included), top first. */
  pixelLayers(doc) {
    const out = [];
    const walk = (list) => {
      for (const layer of Array.from(list || [])) {
        if (layer.layers) {
          walk(layer.layers);
        } else if (layer.name !== PREVIEW_NAME && layer.name !== LIVE_NAME) {
          out.push(layer);
        }
      }
    };
    walk(doc.layers);
    return out;
  }

  /**
   * 8-bit sRGB RGBA of other layers over the same `bounds` (control and reference layers),
   * in one modal scope: {part: pixels} for {part: layerId}.
   */
  async readLayers(doc, layerIds, bounds) {
    const entries = Object.entries(layerIds);
    if (!entries.length) {
      return {};
    }
    return this.ps.core.executeAsModal(async () => {
      const out = {};
      for (const [part, id] of entries) {
        const layer = findLayer(doc.layers, id);
        if (!layer) {
          throw new Error(`The layer chosen for ${part} is gone: choose another.`);
        }
        out[part] = await this.readPixels(doc, layer, bounds, 8);
      }
      return out;
    }, { commandName: "aiedit: read layers" });
  }

  /**
   * Reads the pixels and selection mask of a planned region, inside one modal scope.
   * Returns {bounds, image (sRGB RGBA: Uint8Array, or Uint16Array 0..65535 with `depth` 16),
   * mask (1 byte per pixel, or null), layerId}.
   */
  async readRegion(doc, { bounds, selection, source, wantMask, depth = 8 }) {
    const layer = source === "layer" ? this.activeLayer(doc) : null;
    if (source === "layer" && !layer) {
      throw new Error("Select a pixel layer first.");
    }
    return this.ps.core.executeAsModal(async () => {
      const image = await this.readPixels(doc, layer, bounds, depth);
      const mask = wantMask && selection ? await this.readMask(doc, bounds) : null;
      return { bounds, image, mask, layerId: layer ? layer.id : null };
    }, { commandName: "aiedit: read region" });
  }

  /**
   * RGBA in sRGB over `bounds`, 8 bits (Uint8Array) or 16 bits (Uint16Array, full range
   * 0..65535): Photoshop converts from the document's profile and depth (Imaging API getPixels:
   * colorSpace, colorProfile, componentSize; getData fullRange).
   */
  async readPixels(doc, layer, bounds, depth = 8) {
    const options = {
      documentID: doc.id, sourceBounds: bounds, componentSize: depth, colorSpace: "RGB",
      colorProfile: SRGB,
    };
    const blank = () => (depth === 16 ? new Uint16Array(geo.width(bounds) * geo.height(bounds) * 4)
      : new Uint8Array(geo.width(bounds) * geo.height(bounds) * 4));
    if (layer) {
      if (!layerHasPixelsIn(layer, bounds)) {
        return blank();
      }
      options.layerID = layer.id;
    }
    const got = await this.imaging.getPixels(options);
    try {
      const data = await got.imageData.getData({ chunky: true, fullRange: true });
      const from = geo.normalize(got.sourceBounds);
      const rgba = toRgba(data, geo.width(from) * geo.height(from), got.imageData.components);
      return placeInto(rgba, from, bounds, 4);
    } finally {
      got.imageData.dispose();
    }
  }

  async readMask(doc, bounds) {
    const got = await this.imaging.getSelection({ documentID: doc.id, sourceBounds: bounds });
    try {
      const data = maskTo8(await got.imageData.getData({ chunky: true }));
      const from = got.sourceBounds ? geo.normalize(got.sourceBounds) : bounds;
      const mask = placeInto(data, from, bounds, 1);
      return hasSelectedPixel(mask) ? mask : null;
    } finally {
      got.imageData.dispose();
    }
  }

  /**
   * Puts results on new pixel layers in one history step. Each result is
   * {width, height, offset {x, y}, data (8-bit sRGB RGBA)}; Photoshop converts them into the
   * document's profile and they are written at the document's depth. With `mask` ({bounds,
   * data}) each layer gets a layer mask made from the selection (editable; the layer's pixels
   * stay whole). With `groupName` the layers go into a new group (video frames).
   * With `newDocument` ({width, height, name, scale}) they go into a new document with the
   * source document's profile, depth and resolution (times `scale`) instead; with
   * `growCanvas` ({left, top, right, bottom} pixels) the canvas grows first.
   * Returns {documentId, layerIds, groupId}.
   */
  async applyResults(doc, results,
    { name, mask = null, groupName = null, newDocument = null, growCanvas = null }) {
    return this.ps.core.executeAsModal(async (context) => {
      const target = newDocument ? await this.createDocument(newDocument, doc) : doc;
      const suspension = await context.hostControl.suspendHistory({
        documentID: target.id, name,
      });
      if (growCanvas) {
        await this.growCanvas(target, growCanvas);
      }
      const layers = [];
      for (const result of results) {
        layers.push(await this.putResult(target, result, layerName(name, result, results), mask));
      }
      let group = null;
      if (groupName) {
        group = await target.createLayerGroup({ name: groupName, fromLayers: layers });
      }
      await context.hostControl.resumeHistory(suspension, true);
      return {
        documentId: target.id, layerIds: layers.map((l) => l.id), groupId: group ? group.id : null,
      };
    }, { commandName: `aiedit: ${name}` });
  }

  /** Adds pixels on each side with two anchored resizeCanvas calls (one per corner). */
  async growCanvas(doc, { left, top, right, bottom }) {
    const anchors = this.ps.constants.AnchorPosition;
    if (right > 0 || bottom > 0) {
      await doc.resizeCanvas(doc.width + right, doc.height + bottom, anchors.TOPLEFT);
    }
    if (left > 0 || top > 0) {
      await doc.resizeCanvas(doc.width + left, doc.height + top, anchors.BOTTOMRIGHT);
    }
  }

  /** A document for results that do not fit `source`: its profile, depth, scaled resolution. */
  async createDocument({ width, height, name, scale = 1 }, source) {
    const options = {
      width, height, name, mode: this.ps.constants.NewDocumentMode.RGB, fill: "transparent",
      resolution: (source.resolution || 72) * scale, depth: this.depth(source),
    };
    const profile = this.profile(source);
    if (profile) {
      options.profile = profile;
    }
    return this.ps.app.createDocument(options);
  }

  async putResult(doc, result, name, mask) {
    const depth = this.depth(doc);
    const layer = await doc.createPixelLayer({ name });
    const imageData = await this.imaging.createImageDataFromBuffer(toDepth(result.data, depth), {
      width: result.width, height: result.height, components: 4, chunky: true,
      colorSpace: "RGB", colorProfile: SRGB, fullRange: true,
    });
    try {
      await this.imaging.putPixels({
        documentID: doc.id, layerID: layer.id, imageData,
        targetBounds: { left: result.offset.x, top: result.offset.y }, commandName: name,
      });
    } finally {
      imageData.dispose();
    }
    if (mask) {
      await this.addLayerMask(doc, layer, mask, depth);
    }
    return layer;
  }

  /**
   * Shows `result` on the canvas without committing it: a layer named "aiedit preview" (masked
   * like the real one would be) made in one history step; the layer that was active stays
   * active, so painting does not land on the preview. Returns the preview layer's id.
   */
  async showPreview(doc, result, mask) {
    return this.ps.core.executeAsModal(async (context) => {
      const previous = this.activeLayer(doc);
      const suspension = await context.hostControl.suspendHistory({
        documentID: doc.id, name: "aiedit: preview",
      });
      const layer = await this.putResult(doc, result, PREVIEW_NAME, mask);
      if (previous) {
        await this.ps.action.batchPlay([
          { _obj: "select", _target: [{ _ref: "layer", _id: previous.id }], makeVisible: false },
        ], {});
      }
      await context.hostControl.resumeHistory(suspension, true);
      return layer.id;
    }, { commandName: "aiedit: preview" });
  }

  /**
   * Writes a live frame into the "aiedit live" layer (made on the first frame), replacing its
   * pixels, in one modal step with one history state; the user's active layer stays active.
   * Returns the live layer's id.
   */
  async writeLive(doc, layerId, frame) {
    return this.ps.core.executeAsModal(async (context) => {
      const previous = this.activeLayer(doc);
      const suspension = await context.hostControl.suspendHistory({
        documentID: doc.id, name: "aiedit: live",
      });
      let layer = layerId ? findLayer(doc.layers, layerId) : null;
      if (!layer) {
        layer = await doc.createPixelLayer({ name: LIVE_NAME });
      }
      const imageData = await this.imaging.createImageDataFromBuffer(
        toDepth(frame.data, this.depth(doc)), {
          width: frame.width, height: frame.height, components: 4, chunky: true,
          colorSpace: "RGB", colorProfile: SRGB, fullRange: true,
        });
      try {
        await this.imaging.putPixels({
          documentID: doc.id, layerID: layer.id, imageData, replace: true,
          targetBounds: { left: frame.offset.x, top: frame.offset.y }, commandName: LIVE_NAME,
        });
      } finally {
        imageData.dispose();
      }
      if (previous && previous.id !== layer.id) {
        await this.ps.action.batchPlay([
          { _obj: "select", _target: [{ _ref: "layer", _id: previous.id }], makeVisible: false },
        ], {});
      }
      await context.hostControl.resumeHistory(suspension, true);
      return layer.id;
    }, { commandName: "aiedit: live frame" });
  }

  /** Removes a preview layer, if its document and the layer are still there. */
  async clearPreview(docId, layerId) {
    const doc = this.documentById(docId);
    const layer = doc ? findLayer(doc.layers, layerId) : null;
    if (!layer) {
      return false;
    }
    await this.ps.core.executeAsModal(async (context) => {
      const suspension = await context.hostControl.suspendHistory({
        documentID: doc.id, name: "aiedit: preview",
      });
      await layer.delete();
      await context.hostControl.resumeHistory(suspension, true);
    }, { commandName: "aiedit: remove preview" });
    return true;
  }

  /**
   * A small JPEG of a result as a data URL for an <img> (imaging.encodeImageData, RGB only),
   * or null where this Photoshop has no encoder.
   */
  async thumbnail(result) {
    if (!this.imaging.encodeImageData) {
      return null;
    }
    const small = thumbnailPixels(to8(result.data), result.width, result.height, THUMB_SIDE);
    const imageData = await this.imaging.createImageDataFromBuffer(small.data, {
      width: small.width, height: small.height, components: 3, chunky: true,
      colorSpace: "RGB", colorProfile: SRGB,
    });
    try {
      const jpeg = await this.imaging.encodeImageData({ imageData, base64: true });
      return `data:image/jpeg;base64,${jpeg}`;
    } finally {
      imageData.dispose();
    }
  }

  /**
   * Gives `layer` a user mask made from `mask` ({bounds, data}: one byte per pixel): the
   * "Add Layer Mask" action (batchPlay, on the layer selected first), then
   * imaging.putLayerMask with the selection's values.
   */
  async addLayerMask(doc, layer, mask, depth) {
    await this.ps.action.batchPlay([
      { _obj: "select", _target: [{ _ref: "layer", _id: layer.id }], makeVisible: false },
      {
        _obj: "make", new: { _class: "channel" },
        at: { _ref: "channel", _enum: "channel", _value: "mask" },
        using: { _enum: "userMaskEnabled", _value: "revealAll" },
      },
    ], {});
    const imageData = await this.imaging.createImageDataFromBuffer(toDepth(mask.data, depth), {
      width: geo.width(mask.bounds), height: geo.height(mask.bounds), components: 1,
      chunky: true, colorSpace: "Grayscale", colorProfile: GRAY, fullRange: true,
    });
    try {
      await this.imaging.putLayerMask({
        documentID: doc.id, layerID: layer.id, kind: "user", imageData, replace: true,
        targetBounds: { left: mask.bounds.left, top: mask.bounds.top },
        commandName: "aiedit: selection mask",
      });
    } finally {
      imageData.dispose();
    }
  }
}

function findLayer(list, id) {
  for (const layer of Array.from(list || [])) {
    if (layer.id === id) {
      return layer;
    }
    const inner = findLayer(layer.layers, id);
    if (inner) {
      return inner;
    }
  }
  return null;
}

/** Nearest-neighbour downscale to at most `side` px, RGB on a grey matte for the alpha. */
function thumbnailPixels(rgba, width, height, side) {
  const scale = Math.min(1, side / Math.max(width, height));
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const sy = Math.min(height - 1, Math.floor(y / scale));
    for (let x = 0; x < w; x++) {
      const sx = Math.min(width - 1, Math.floor(x / scale));
      const i = (sy * width + sx) * 4;
      const a = rgba[i + 3] / 255;
      for (let c = 0; c < 3; c++) {
        out[(y * w + x) * 3 + c] = Math.round(rgba[i + c] * a + 96 * (1 - a));
      }
    }
  }
  return { data: out, width: w, height: h };
}

function layerHasPixelsIn(layer, bounds) {
  const content = layer.boundsNoEffects ? geo.normalize(layer.boundsNoEffects) : null;
  return Boolean(content) && !geo.isEmpty(geo.intersect(content, bounds));
}

function layerName(base, result, results) {
  const seed = result.seed !== null && result.seed !== undefined ? ` seed ${result.seed}` : "";
  const frame = results.length > 1 ? ` #${result.index + 1}` : "";
  return `${base}${frame}${seed}`;
}

module.exports = {
  PhotoshopHost, DocumentError, layerName, findLayer, SRGB, PREVIEW_NAME, LIVE_NAME,
};
