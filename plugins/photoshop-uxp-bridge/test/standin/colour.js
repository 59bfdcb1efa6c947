"use strict";
/**
 * Colour conversions for the Photoshop stand-in: the RGB profiles a test document may carry
 * (published primaries, D65 white, their transfer curves), Lab D50 (the Imaging API's Lab
 * profile) and a plain CMYK. Values are normalised 0..1 per channel; Lab is stored as
 * Photoshop encodes it (L 0..100 → 0..1, a/b -128..127 → 0..1 with 0.5 for 0).
 */

const SRGB = "sRGB IEC61966-2.1";
const ADOBE_RGB = "Adobe RGB (1998)";
const DISPLAY_P3 = "Display P3";
const LAB = "Lab D50";

const D65 = [0.95047, 1, 1.08883];
const D50 = [0.96422, 1, 0.82521];

function srgbDecode(v) {
  return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
}

function srgbEncode(v) {
  return v <= 0.0031308 ? v * 12.92 : 1.055 * v ** (1 / 2.4) - 0.055;
}

const ADOBE_GAMMA = 563 / 256;

function matrixFromPrimaries([[rx, ry], [gx, gy], [bx, by]], white) {
  const xyz = (x, y) => [x / y, 1, (1 - x - y) / y];
  const columns = [xyz(rx, ry), xyz(gx, gy), xyz(bx, by)];
  const m = [0, 1, 2].map((row) => columns.map((c) => c[row]));
  const s = multiply(invert(m), white);
  return m.map((row) => row.map((v, i) => v * s[i]));
}

function multiply(m, v) {
  return m.map((row) => row[0] * v[0] + row[1] * v[1] + row[2] * v[2]);
}

function matmul(a, b) {
  return a.map((row) => [0, 1, 2].map((j) =>
    row[0] * b[0][j] + row[1] * b[1][j] + row[2] * b[2][j]));
}

function invert(m) {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const A = e * i - f * h;
  const B = -(d * i - f * g);
  const C = d * h - e * g;
  const det = a * A + b * B + c * C;
  return [
    [A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det],
  ];
}

const PROFILES = {
  [SRGB]: {
    toXyz: matrixFromPrimaries([[0.64, 0.33], [0.30, 0.60], [0.15, 0.06]], D65),
    decode: srgbDecode, encode: srgbEncode,
  },
  [ADOBE_RGB]: {
    toXyz: matrixFromPrimaries([[0.64, 0.33], [0.21, 0.71], [0.15, 0.06]], D65),
    decode: (v) => Math.max(v, 0) ** ADOBE_GAMMA,
    encode: (v) => Math.max(v, 0) ** (1 / ADOBE_GAMMA),
  },
  [DISPLAY_P3]: {
    toXyz: matrixFromPrimaries([[0.680, 0.320], [0.265, 0.690], [0.150, 0.060]], D65),
    decode: srgbDecode, encode: srgbEncode,
  },
};
for (const p of Object.values(PROFILES)) {
  p.fromXyz = invert(p.toXyz);
}

// Bradford chromatic adaptation D65 → D50 (Lab in Photoshop is D50).
const BRADFORD = [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]];
function adaptation(from, to) {
  const a = multiply(BRADFORD, from);
  const b = multiply(BRADFORD, to);
  const scale = [[b[0] / a[0], 0, 0], [0, b[1] / a[1], 0], [0, 0, b[2] / a[2]]];
  return matmul(invert(BRADFORD), matmul(scale, BRADFORD));
}
const D65_TO_D50 = adaptation(D65, D50);
const D50_TO_D65 = invert(D65_TO_D50);

function isRgbProfile(name) {
  return Object.prototype.hasOwnProperty.call(PROFILES, name);
}

function profile(name) {
  if (!isRgbProfile(name)) {
    throw new Error(`stand-in: no RGB profile named ${JSON.stringify(name)}`);
  }
  return PROFILES[name];
}

const clamp = (v) => Math.min(1, Math.max(0, v));

/** Converts one encoded RGB triple (0..1) from one RGB profile to another, clipping the gamut. */
function rgbToRgb(rgb, from, to) {
  if (from === to) {
    return rgb;
  }
  const a = profile(from);
  const b = profile(to);
  const xyz = multiply(a.toXyz, rgb.map(a.decode));
  return multiply(b.fromXyz, xyz).map((v) => clamp(b.encode(clamp(v))));
}

function labF(t) {
  return t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116;
}

function labFInverse(t) {
  return t ** 3 > 216 / 24389 ? t ** 3 : (116 * t - 16) / (24389 / 27);
}

/** Encoded Lab (0..1 channels) → encoded RGB in `to`. */
function labToRgb([l, a, b], to) {
  const L = l * 100;
  const A = a * 255 - 128;
  const B = b * 255 - 128;
  const fy = (L + 16) / 116;
  const xyz50 = [labFInverse(fy + A / 500) * D50[0], labFInverse(fy) * D50[1],
    labFInverse(fy - B / 200) * D50[2]];
  const target = profile(to);
  return multiply(target.fromXyz, multiply(D50_TO_D65, xyz50))
    .map((v) => clamp(target.encode(clamp(v))));
}

/** Encoded RGB in `from` → encoded Lab (0..1 channels). */
function rgbToLab(rgb, from) {
  const source = profile(from);
  const xyz50 = multiply(D65_TO_D50, multiply(source.toXyz, rgb.map(source.decode)));
  const [fx, fy, fz] = xyz50.map((v, i) => labF(v / D50[i]));
  return [clamp((116 * fy - 16) / 100), clamp((500 * (fx - fy) + 128) / 255),
    clamp((200 * (fy - fz) + 128) / 255)];
}

/** A plain (profile-less) CMYK → sRGB, as the stand-in's "Working CMYK". */
function cmykToRgb([c, m, y, k]) {
  return [(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)];
}

function rgbToCmyk([r, g, b]) {
  const k = 1 - Math.max(r, g, b);
  if (k >= 1) {
    return [0, 0, 0, 1];
  }
  return [(1 - r - k) / (1 - k), (1 - g - k) / (1 - k), (1 - b - k) / (1 - k), k];
}

module.exports = {
  SRGB, ADOBE_RGB, DISPLAY_P3, LAB, isRgbProfile, rgbToRgb, labToRgb, rgbToLab, cmykToRgb,
  rgbToCmyk,
};
