"use strict";
/** Pure pixel-buffer helpers: 8-bit chunky buffers, no host APIs. */

const { width, height, intersect, isEmpty } = require("./geometry");

/** Returns 8-bit RGBA for chunky data with 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 components. */
function toRgba(data, pixelCount, components) {
  if (components === 4) {
    return data;
  }
  const out = new Uint8Array(pixelCount * 4);
  for (let i = 0; i < pixelCount; i++) {
    const src = i * components;
    const dst = i * 4;
    const gray = components <= 2;
    out[dst] = data[src];
    out[dst + 1] = gray ? data[src] : data[src + 1];
    out[dst + 2] = gray ? data[src] : data[src + 2];
    out[dst + 3] = components === 2 ? data[src + 1] : 255;
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
  const out = new Uint8Array(width(to) * height(to) * components);
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
 * 8-bit values as the Imaging API wants them at `depth` bits: the same Uint8Array for 8,
 * a Uint16Array in Photoshop's 16-bit range (0..32768) for 16.
 */
function toDepth(data, depth) {
  if (depth === 8) {
    return data;
  }
  if (depth !== 16) {
    throw new Error(`no ${depth}-bit writes: the document must be 8 or 16 bits per channel`);
  }
  return Uint16Array.from(data, (v) => Math.round((v * 32768) / 255));
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

module.exports = { toRgba, placeInto, hasSelectedPixel, toDepth, maskTo8 };
