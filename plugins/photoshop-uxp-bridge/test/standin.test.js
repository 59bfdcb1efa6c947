"use strict";
// The stand-in must behave as Adobe documents Photoshop's UXP API; these tests pin that down.

const test = require("node:test");
const assert = require("node:assert/strict");
const { createPhotoshop, colour } = require("./standin/photoshop");

function solid(width, height, rgba) {
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < data.length; i += 4) {
    data.set(rgba, i);
  }
  return data;
}

function setup(version = 25) {
  const ps = createPhotoshop({ version });
  const doc = ps.standin.openDocument({ width: 40, height: 30, background: [10, 20, 30] });
  const layer = doc.addLayerNow({
    name: "patch", bounds: { left: 10, top: 5, right: 20, bottom: 15 },
    pixels: solid(10, 10, [200, 100, 50, 255]),
  });
  return { ps, doc, layer };
}

const modal = (ps, fn) => ps.core.executeAsModal(fn, { commandName: "test" });

test("writes outside executeAsModal throw the documented modal-scope error", async () => {
  const { ps, doc, layer } = setup();
  await assert.rejects(doc.createPixelLayer({ name: "x" }),
    /Event: make may modify the state of Photoshop.*only allowed from inside a modal scope/);
  const imageData = await ps.imaging.createImageDataFromBuffer(solid(1, 1, [1, 2, 3, 4]),
    { width: 1, height: 1, components: 4, colorSpace: "RGB" });
  await assert.rejects(ps.imaging.putPixels({ layerID: layer.id, imageData }),
    /only allowed from inside a modal scope/);
  assert.throws(() => { layer.name = "renamed"; }, /modal scope/);
  await modal(ps, async () => {
    layer.name = "renamed";
  });
  assert.equal(layer.name, "renamed");
});

test("executeAsModal requires a commandName", async () => {
  const { ps } = setup();
  await assert.rejects(ps.core.executeAsModal(async () => {}), /commandName is required/);
});

test("getPixels trims sourceBounds to the layer's content and reports it", async () => {
  const { ps, doc, layer } = setup();
  const got = await ps.imaging.getPixels({
    documentID: doc.id, layerID: layer.id, sourceBounds: { left: 0, top: 0, right: 15, bottom: 30 },
  });
  assert.deepEqual(got.sourceBounds, { left: 10, top: 5, right: 15, bottom: 15 });
  assert.equal(got.imageData.width, 5);
  assert.equal(got.imageData.height, 10);
  assert.equal(got.imageData.components, 4);
  const data = await got.imageData.getData();
  assert.deepEqual(Array.from(data.subarray(0, 4)), [200, 100, 50, 255]);
});

test("getPixels of the composite with a Background layer has three components", async () => {
  const { ps, doc } = setup();
  const got = await ps.imaging.getPixels({
    documentID: doc.id, sourceBounds: { left: 9, top: 5, width: 2, height: 1 },
  });
  assert.equal(got.imageData.components, 3);
  assert.deepEqual(Array.from(await got.imageData.getData()), [10, 20, 30, 200, 100, 50]);
});

test("getData returns planar data on request and fails after dispose", async () => {
  const { ps, doc } = setup();
  const got = await ps.imaging.getPixels({
    documentID: doc.id, sourceBounds: { left: 9, top: 5, width: 2, height: 1 },
  });
  assert.deepEqual(Array.from(await got.imageData.getData({ chunky: false })),
    [10, 200, 20, 100, 30, 50]);
  got.imageData.dispose();
  await assert.rejects(got.imageData.getData(), /disposed/);
});

test("putPixels requires a layerID", async () => {
  const { ps } = setup();
  const imageData = await ps.imaging.createImageDataFromBuffer(solid(1, 1, [1, 2, 3, 4]),
    { width: 1, height: 1, components: 4, colorSpace: "RGB" });
  await modal(ps, async () => {
    await assert.rejects(ps.imaging.putPixels({ imageData }), /layerID is required/);
  });
});

test("createImageDataFromBuffer checks the buffer length", async () => {
  const { ps } = setup();
  await assert.rejects(ps.imaging.createImageDataFromBuffer(new Uint8Array(11),
    { width: 1, height: 3, components: 4, colorSpace: "RGB" }), /width \* height \* components/);
});

test("getSelection returns one component over the requested bounds", async () => {
  const { ps, doc } = setup();
  doc.selectRectangleNow({ left: 12, top: 6, right: 16, bottom: 9 });
  const got = await ps.imaging.getSelection({
    documentID: doc.id, sourceBounds: { left: 10, top: 5, right: 20, bottom: 10 },
  });
  assert.equal(got.imageData.components, 1);
  const data = await got.imageData.getData();
  assert.equal(data.length, 50);
  assert.equal(data[0], 0);
  assert.equal(data[1 * 10 + 2], 255);
});

test("selection.bounds is null without a selection (25.0+) and missing before 25.0", async () => {
  const { doc } = setup(25);
  assert.equal(doc.selection.bounds, null);
  doc.selectRectangleNow({ left: 1, top: 2, right: 3, bottom: 4 });
  assert.deepEqual(doc.selection.bounds, { left: 1, top: 2, right: 3, bottom: 4 });
  const old = setup(24).doc;
  assert.equal(old.selection, undefined);
});

test("suspended history coalesces changes into one named state", async () => {
  const { ps, doc } = setup();
  const before = doc.historyStates.length;
  await modal(ps, async (context) => {
    const suspension = await context.hostControl.suspendHistory({ documentID: doc.id, name: "AI" });
    await doc.createPixelLayer({ name: "a" });
    await doc.createPixelLayer({ name: "b" });
    await context.hostControl.resumeHistory(suspension, true);
  });
  assert.equal(doc.historyStates.length, before + 1);
  assert.equal(doc.historyStates.at(-1).name, "AI");
});

test("a target function that throws rolls back suspended history", async () => {
  const { ps, doc } = setup();
  const layers = doc.layers.length;
  await assert.rejects(modal(ps, async (context) => {
    await context.hostControl.suspendHistory({ documentID: doc.id, name: "AI" });
    await doc.createPixelLayer({ name: "a" });
    throw new Error("boom");
  }), /boom/);
  assert.equal(doc.layers.length, layers);
});

test("getPixels converts to a requested profile and depth; 16-bit data is 0..32768", async () => {
  const ps = createPhotoshop();
  const doc = ps.standin.openDocument({ width: 2, height: 1, profile: colour.ADOBE_RGB,
    depth: 16, background: [255, 0, 0] });
  const own = await ps.imaging.getPixels({ documentID: doc.id });
  assert.equal(own.imageData.componentSize, 16);
  assert.equal(own.imageData.colorProfile, colour.ADOBE_RGB);
  const data = await own.imageData.getData();
  assert.ok(data instanceof Uint16Array);
  assert.deepEqual(Array.from(data.subarray(0, 3)), [32768, 0, 0]);
  assert.deepEqual(Array.from((await own.imageData.getData({ fullRange: true })).subarray(0, 3)),
    [65535, 0, 0]);
  const srgb = await ps.imaging.getPixels({ documentID: doc.id, componentSize: 8,
    colorSpace: "RGB", colorProfile: colour.SRGB });
  const px = Array.from((await srgb.imageData.getData()).subarray(0, 3));
  assert.equal(px[0], 255, "Adobe RGB red is outside sRGB: clipped");
  assert.equal(srgb.imageData.colorProfile, colour.SRGB);
});

test("putPixels converts from the data's profile and refuses another depth", async () => {
  const ps = createPhotoshop();
  const doc = ps.standin.openDocument({ width: 1, height: 1, profile: colour.DISPLAY_P3,
    depth: 8 });
  const layer = doc.addLayerNow({ name: "x", bounds: { left: 0, top: 0, right: 0, bottom: 0 } });
  const srgbGreen = new Uint8Array([0, 255, 0, 255]);
  await modal(ps, async () => {
    const tagged = await ps.imaging.createImageDataFromBuffer(srgbGreen,
      { width: 1, height: 1, components: 4, colorSpace: "RGB", colorProfile: colour.SRGB });
    await ps.imaging.putPixels({ layerID: layer.id, imageData: tagged });
    const expected = colour.rgbToRgb([0, 1, 0], colour.SRGB, colour.DISPLAY_P3)
      .map((v) => Math.round(v * 255));
    assert.deepEqual(layer.pixelAt(0, 0), [...expected, 255]);
    const deep = await ps.imaging.createImageDataFromBuffer(new Uint16Array(4),
      { width: 1, height: 1, components: 4, colorSpace: "RGB" });
    await assert.rejects(ps.imaging.putPixels({ layerID: layer.id, imageData: deep }),
      /16-bit data into a 8-bit document/);
  });
});

test("layer masks: Add Layer Mask through batchPlay, then putLayerMask / getLayerMask", async () => {
  const { ps, doc, layer } = setup();
  const gray = await ps.imaging.createImageDataFromBuffer(new Uint8Array([0, 255]),
    { width: 2, height: 1, components: 1, colorSpace: "Grayscale", colorProfile: "Gray Gamma 2.2" });
  await modal(ps, async () => {
    await assert.rejects(ps.imaging.putLayerMask({ layerID: layer.id, imageData: gray }),
      /without a user mask is not described/);
    await ps.action.batchPlay([
      { _obj: "select", _target: [{ _ref: "layer", _id: layer.id }], makeVisible: false },
      { _obj: "make", new: { _class: "channel" },
        at: { _ref: "channel", _enum: "channel", _value: "mask" },
        using: { _enum: "userMaskEnabled", _value: "revealAll" } },
    ], {});
    await ps.imaging.putLayerMask({ layerID: layer.id, imageData: gray,
      targetBounds: { left: 10, top: 5 } });
  });
  assert.deepEqual([layer.maskAt(10, 5), layer.maskAt(11, 5), layer.maskAt(12, 5)], [0, 255, 255]);
  assert.deepEqual(doc.compositePixel(10, 5), [10, 20, 30, 255], "masked out shows below");
  assert.deepEqual(doc.compositePixel(11, 5), [200, 100, 50, 255]);
  const got = await ps.imaging.getLayerMask({ layerID: layer.id,
    sourceBounds: { left: 10, top: 5, right: 12, bottom: 6 } });
  assert.deepEqual(Array.from(await got.imageData.getData()), [0, 255]);
  const rgb = await ps.imaging.createImageDataFromBuffer(new Uint8Array(3),
    { width: 1, height: 1, components: 3, colorSpace: "RGB" });
  await modal(ps, async () => {
    await assert.rejects(ps.imaging.putLayerMask({ layerID: layer.id, imageData: rgb }),
      /single Grayscale component/);
  });
});

test("Lab documents read as Lab unless RGB is asked for; CMYK reads need a colour space",
  async () => {
    const ps = createPhotoshop();
    const lab = ps.standin.openDocument({ width: 1, height: 1, mode: "lab",
      background: [255, 128, 128] });
    const raw = await ps.imaging.getPixels({ documentID: lab.id });
    assert.equal(raw.imageData.colorSpace, "Lab");
    assert.equal(raw.imageData.pixelFormat, "LAB");
    const rgb = await ps.imaging.getPixels({ documentID: lab.id, colorSpace: "RGB",
      colorProfile: colour.SRGB });
    assert.deepEqual(Array.from(await rgb.imageData.getData()), [255, 255, 255]);
    const cmyk = ps.standin.openDocument({ width: 1, height: 1, mode: "cmyk",
      background: [0, 0, 0, 0] });
    await assert.rejects(ps.imaging.getPixels({ documentID: cmyk.id }), /not described/);
  });
