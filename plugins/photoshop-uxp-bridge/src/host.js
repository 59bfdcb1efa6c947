"use strict";
/**
 * The Photoshop side: reads the region a job needs and writes results as new layers.
 * Only pixel reads and writes happen inside `core.executeAsModal`; everything that waits on
 * the network happens outside it, so Photoshop stays usable while a job runs.
 */

const geo = require("./geometry");
const { toRgba, placeInto, applyMask, hasSelectedPixel } = require("./pixels");

const SRGB = "sRGB IEC61966-2.1";

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

  /**
   * Reads the pixels and selection mask of a planned region, inside one modal scope.
   * Returns {bounds, image (RGBA), mask (1 byte per pixel, or null), layerId}.
   */
  async readRegion(doc, { bounds, selection, source, wantMask }) {
    const layer = source === "layer" ? this.activeLayer(doc) : null;
    if (source === "layer" && !layer) {
      throw new Error("Select a pixel layer first.");
    }
    return this.ps.core.executeAsModal(async () => {
      const image = await this.readPixels(doc, layer, bounds);
      const mask = wantMask && selection ? await this.readMask(doc, bounds) : null;
      return { bounds, image, mask, layerId: layer ? layer.id : null };
    }, { commandName: "aiedit: read region" });
  }

  async readPixels(doc, layer, bounds) {
    const options = { documentID: doc.id, sourceBounds: bounds, componentSize: 8 };
    if (layer) {
      if (!layerHasPixelsIn(layer, bounds)) {
        return new Uint8Array(geo.width(bounds) * geo.height(bounds) * 4);
      }
      options.layerID = layer.id;
    }
    const got = await this.imaging.getPixels(options);
    try {
      const data = await got.imageData.getData({ chunky: true });
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
      const data = await got.imageData.getData({ chunky: true });
      const from = got.sourceBounds ? geo.normalize(got.sourceBounds) : bounds;
      const mask = placeInto(data, from, bounds, 1);
      return hasSelectedPixel(mask) ? mask : null;
    } finally {
      got.imageData.dispose();
    }
  }

  /**
   * Puts results on new pixel layers in one history step. Each result is
   * {width, height, offset {x, y}, data (RGBA)}. With `mask` ({bounds, data}) the layers are
   * masked by the selection. With `groupName` the layers go into a new group (video frames).
   * With `newDocument` ({width, height, name}) they go into a new document instead; with
   * `growCanvas` ({left, top, right, bottom} pixels) the canvas grows first.
   * Returns {documentId, layerIds, groupId}.
   */
  async applyResults(doc, results,
    { name, mask = null, groupName = null, newDocument = null, growCanvas = null }) {
    return this.ps.core.executeAsModal(async (context) => {
      const target = newDocument ? await this.createDocument(newDocument) : doc;
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

  async createDocument({ width, height, name, resolution = 72 }) {
    return this.ps.app.createDocument({
      width, height, resolution, name, mode: "RGBColorMode", fill: "transparent",
    });
  }

  async putResult(doc, result, name, mask) {
    const where = geo.rect(result.offset.x, result.offset.y,
      result.offset.x + result.width, result.offset.y + result.height);
    const pixels = mask ? applyMask(result.data, where, mask.data, mask.bounds) : result.data;
    const layer = await doc.createPixelLayer({ name });
    const imageData = await this.imaging.createImageDataFromBuffer(pixels, {
      width: result.width, height: result.height, components: 4, chunky: true,
      colorSpace: "RGB", colorProfile: SRGB,
    });
    try {
      await this.imaging.putPixels({
        documentID: doc.id, layerID: layer.id, imageData,
        targetBounds: { left: where.left, top: where.top }, commandName: name,
      });
    } finally {
      imageData.dispose();
    }
    return layer;
  }
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

module.exports = { PhotoshopHost, layerName };
