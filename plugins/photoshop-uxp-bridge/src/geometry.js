"use strict";
/**
 * Rectangles in document pixels. A rect is {left, top, right, bottom} with right/bottom
 * exclusive, the convention of Photoshop's Imaging API.
 */

function rect(left, top, right, bottom) {
  return { left, top, right, bottom };
}

function width(r) {
  return r.right - r.left;
}

function height(r) {
  return r.bottom - r.top;
}

function isEmpty(r) {
  return !r || width(r) <= 0 || height(r) <= 0;
}

/** Normalizes {left, top, width, height} or {left, top, right, bottom} to a rect. */
function normalize(r) {
  if (r.right === undefined && r.width !== undefined) {
    return rect(r.left, r.top, r.left + r.width, r.top + r.height);
  }
  return rect(r.left, r.top, r.right, r.bottom);
}

function intersect(a, b) {
  return rect(
    Math.max(a.left, b.left),
    Math.max(a.top, b.top),
    Math.min(a.right, b.right),
    Math.min(a.bottom, b.bottom),
  );
}

function union(a, b) {
  return rect(
    Math.min(a.left, b.left),
    Math.min(a.top, b.top),
    Math.max(a.right, b.right),
    Math.max(a.bottom, b.bottom),
  );
}

/** Grows a rect by margin pixels on each side, then clips it to the limit rect. */
function grow(r, margin, limit) {
  const grown = rect(r.left - margin, r.top - margin, r.right + margin, r.bottom + margin);
  return limit ? intersect(grown, limit) : grown;
}

/** Rounds a rect outwards to whole pixels. */
function toPixels(r) {
  return rect(Math.floor(r.left), Math.floor(r.top), Math.ceil(r.right), Math.ceil(r.bottom));
}

module.exports = { rect, width, height, isEmpty, normalize, intersect, union, grow, toPixels };
