"use strict";
/** Pure pixel-buffer helpers: 8-bit chunky buffers, no host APIs. */

const { width, height, intersect, isEmpty } = require("./geometry");

/**
 * RGBA for chunky data with 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 components, in the same
 * array type (an opaque pixel gets the type's full alpha: 255, or 65535 for Uint16Array).
 */
function toRgba(data, pixelCount, components) {
  if (components === 4) {
    return data;
  }
  const opaque = data instanceof Uint16Array ? 65535 : 255;
  const out = new data.constructor(pixelCount * 4);
  for (let i = 0; i < pixelCount; i++) {
    const src = i * components;
    const dst = i * 4;
    const gray = components <= 2;
    out[dst] = data[src];
    out[dst + 1] = gray ? data[src] : data[src + 1];
    out[dst + 2] = gray ? data[src] : data[src + 2];
    out[dst + 3] = components === 2 ? data[src + 1] : opaque;
  }
  return out;
}

/**
 * Copies a chunky buffer covering `from` into a new zero-filled buffer covering `to`.
 * Used to pad pixels that Photoshop trimmed to a layer's content back to the requested region.
 */
function placeInto(data, from, to, components) {
  if (from.left === to.left && from.top === to.top &&
      width(from) === width(to) && height(from) === height(to)) {
    return data;
  }
  const out = new data.constructor(width(to) * height(to) * components);
  const overlap = intersect(from, to);
  if (isEmpty(overlap)) {
    return out;
  }
  const rowBytes = width(overlap) * components;
  for (let y = overlap.top; y < overlap.bottom; y++) {
    const src = ((y - from.top) * width(from) + (overlap.left - from.left)) * components;
    const dst = ((y - to.top) * width(to) + (overlap.left - to.left)) * components;
    out.set(data.subarray(src, src + rowBytes), dst);
  }
  return out;
}

/**
 * Pixels as the Imaging API takes them at `depth` bits per channel, for
 * createImageDataFromBuffer with `fullRange: true`: 8 bits as a Uint8Array, 16 bits as a
 * Uint16Array over the full range 0..65535. `data` is 8-bit (Uint8Array) or full-range 16-bit
 * (Uint16Array); 8 ↔ 16 bits is ×257 / round(÷257), as the server converts.
 */
function toDepth(data, depth) {
  if (depth !== 8 && depth !== 16) {
    throw new Error(`no ${depth}-bit writes: the document must be 8 or 16 bits per channel`);
  }
  const deep = data instanceof Uint16Array;
  if (depth === 16) {
    return deep ? data : Uint16Array.from(data, (v) => v * 257);
  }
  return deep ? Uint8Array.from(data, (v) => Math.round(v / 257)) : data;
}

/** Full-range 16-bit (or 8-bit) RGBA as 8-bit, for thumbnails and previews. */
function to8(data) {
  return toDepth(data, 8);
}

/** A one-component mask as bytes: 16-bit (0..32768) and 32-bit (0..1) masks scaled. */
function maskTo8(data) {
  if (data instanceof Uint8Array) {
    return data;
  }
  if (data instanceof Float32Array) {
    return Uint8Array.from(data, (v) => Math.round(Math.min(1, Math.max(0, v)) * 255));
  }
  return Uint8Array.from(data, (v) => Math.round((Math.min(v, 32768) * 255) / 32768));
}

/** True when a mask has at least one selected pixel. */
function hasSelectedPixel(mask) {
  return mask.some((v) => v > 0);
}

module.exports = { toRgba, placeInto, hasSelectedPixel, toDepth, to8, maskTo8 };
