"use strict";
// The stand-in must behave as Adobe documents Photoshop's UXP API; these tests pin that down.

const test = require("node:test");
const assert = require("node:assert/strict");
const { createPhotoshop } = require("./standin/photoshop");

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
