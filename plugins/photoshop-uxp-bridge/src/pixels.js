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
 * Multiplies a mask into the alpha of an RGBA buffer. `rgbaRect` and `maskRect` are where each
 * buffer sits in the document; pixels outside the mask become transparent.
 */
function applyMask(rgba, rgbaRect, mask, maskRect) {
  const out = new Uint8Array(rgba);
  const w = width(rgbaRect);
  const mw = width(maskRect);
  for (let y = rgbaRect.top; y < rgbaRect.bottom; y++) {
    for (let x = rgbaRect.left; x < rgbaRect.right; x++) {
      const inside = x >= maskRect.left && x < maskRect.right &&
        y >= maskRect.top && y < maskRect.bottom;
      const m = inside ? mask[(y - maskRect.top) * mw + (x - maskRect.left)] : 0;
      const a = ((y - rgbaRect.top) * w + (x - rgbaRect.left)) * 4 + 3;
      out[a] = Math.round((out[a] * m) / 255);
    }
  }
  return out;
}

/** True when a mask has at least one selected pixel. */
function hasSelectedPixel(mask) {
  return mask.some((v) => v > 0);
}

module.exports = { toRgba, placeInto, applyMask, hasSelectedPixel };
