"use strict";
// The plugin's Photoshop side against the stand-in: what it reads and how it writes results.

const test = require("node:test");
const assert = require("node:assert/strict");
const { createPhotoshop } = require("./standin/photoshop");
const { PhotoshopHost } = require("../src/host");
const { applyOutcome } = require("../src/job");

function gradient(width, height) {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      data.set([x * 4, y * 4, 128, 255], (y * width + x) * 4);
    }
  }
  return data;
}

function setup(version = 25) {
  const ps = createPhotoshop({ version });
  const doc = ps.standin.openDocument({ width: 48, height: 32, background: [255, 255, 255] });
  const layer = doc.addLayerNow({
    name: "art", bounds: { left: 8, top: 4, right: 40, bottom: 28 }, pixels: gradient(32, 24),
  });
  return { ps, doc, layer, host: new PhotoshopHost(ps) };
}

for (const version of [24, 25]) {
  test(`selection bounds grow by the margin and clip to the canvas (Photoshop ${version})`,
    async () => {
      const { doc, host } = setup(version);
      doc.selectRectangleNow({ left: 2, top: 10, right: 12, bottom: 20 });
      const plan = await host.planRegion(doc, { regionKind: "selection", margin: 4 });
      assert.deepEqual(plan.selection, { left: 2, top: 10, right: 12, bottom: 20 });
      assert.deepEqual(plan.bounds, { left: 0, top: 6, right: 16, bottom: 24 });
    });
}

test("without a selection a selection-region job covers the whole canvas", async () => {
  const { doc, host } = setup();
  const plan = await host.planRegion(doc, { regionKind: "selection", margin: 16 });
  assert.equal(plan.selection, null);
  assert.deepEqual(plan.bounds, { left: 0, top: 0, right: 48, bottom: 32 });
});

test("a layer-region job covers the active layer's pixels", async () => {
  const { doc, host } = setup();
  const plan = await host.planRegion(doc, { regionKind: "layer", source: "layer" });
  assert.deepEqual(plan.bounds, { left: 8, top: 4, right: 40, bottom: 28 });
});

test("reading the active layer pads pixels Photoshop trimmed back to the region", async () => {
  const { ps, doc, host } = setup();
  doc.selectRectangleNow({ left: 4, top: 8, right: 12, bottom: 12 });
  const bounds = { left: 0, top: 4, right: 16, bottom: 16 };
  const region = await host.readRegion(doc, {
    bounds, selection: { left: 4, top: 8, right: 12, bottom: 12 }, source: "layer", wantMask: true,
  });
  assert.equal(region.image.length, 16 * 12 * 4);
  const at = (x, y) => {
    const i = ((y - 4) * 16 + x) * 4;
    return Array.from(region.image.subarray(i, i + 4));
  };
  assert.deepEqual(at(0, 4), [0, 0, 0, 0], "left of the layer's content is transparent");
  assert.deepEqual(at(8, 4), [0, 0, 128, 255]);
  assert.deepEqual(at(10, 6), [8, 8, 128, 255]);
  assert.equal(region.mask.length, 16 * 12);
  assert.equal(region.mask[(8 - 4) * 16 + 4], 255);
  assert.equal(region.mask[0], 0);
  const reads = ps.standin.calls.filter((c) => c.name === "getPixels" || c.name === "getSelection");
  assert.ok(reads.length === 2 && reads.every((c) => c.inModal), "reads happen in a modal scope");
});

test("reading the composite turns three components into opaque RGBA", async () => {
  const { doc, host } = setup();
  const region = await host.readRegion(doc, {
    bounds: { left: 0, top: 0, right: 10, bottom: 5 }, selection: null, source: "composite",
  });
  assert.deepEqual(Array.from(region.image.subarray(0, 4)), [255, 255, 255, 255]);
  const i = (4 * 10 + 9) * 4;
  assert.deepEqual(Array.from(region.image.subarray(i, i + 4)), [4, 0, 128, 255]);
  assert.equal(region.mask, null);
});

function outcomeFor(doc, operationId, results, region) {
  return { doc, region, results, name: `${operationId}: a red door`, operationId };
}

test("results become new layers at their offset with the selection as a layer mask, in one step",
  async () => {
    const { ps, doc, host, layer: art } = setup();
    const bounds = { left: 4, top: 4, right: 8, bottom: 6 };
    const mask = new Uint8Array([0, 255, 255, 0, 0, 128, 255, 0]);
    const red = new Uint8Array(4 * 2 * 4).fill(255);
    for (let i = 1; i < red.length; i += 4) {
      red[i] = 0;
      red[i + 1] = 0;
    }
    const artBefore = Array.from(art.raster.data);
    const history = doc.historyStates.length;
    const applied = await applyOutcome(host, outcomeFor(doc, "inpaint",
      [{ index: 0, seed: 7, width: 4, height: 2, offset: { x: 4, y: 4 }, data: red }],
      { bounds, mask }));
    const layer = doc.layerById(applied.layerIds[0]);
    assert.equal(layer.name, "inpaint: a red door seed 7");
    assert.deepEqual(layer.pixelAt(4, 4), [255, 0, 0, 255], "the layer's pixels stay whole");
    assert.deepEqual(layer.boundsNoEffects, bounds);
    assert.deepEqual([layer.maskAt(4, 4), layer.maskAt(5, 4), layer.maskAt(5, 5)], [0, 255, 128],
      "the selection became the layer's mask, soft edges included");
    assert.deepEqual(doc.compositePixel(4, 4), [255, 255, 255, 255], "masked out: unchanged");
    assert.deepEqual(doc.compositePixel(5, 4), [255, 0, 0, 255]);
    assert.deepEqual(doc.compositePixel(5, 5).slice(0, 3), [255, 127, 127], "half mask: half");
    assert.deepEqual(Array.from(art.raster.data), artBefore, "the base layer is never changed");
    assert.equal(doc.historyStates.length, history + 1);
    assert.equal(doc.historyStates.at(-1).name, "inpaint: a red door");
    assert.equal(doc.layers[0], layer, "the new layer is on top");
    const writes = ps.standin.calls.filter((c) =>
      ["make", "putPixels", "putLayerMask"].includes(c.name));
    assert.ok(writes.length >= 4 && writes.every((c) => c.inModal));
  });

test("generate results are not masked", async () => {
  const { doc, host } = setup();
  const data = new Uint8Array(2 * 2 * 4).fill(200);
  const applied = await applyOutcome(host, outcomeFor(doc, "generate",
    [{ index: 0, seed: 1, width: 2, height: 2, offset: { x: 1, y: 1 }, data }],
    { bounds: { left: 1, top: 1, right: 3, bottom: 3 }, mask: new Uint8Array(4) }));
  assert.deepEqual(doc.layerById(applied.layerIds[0]).pixelAt(1, 1), [200, 200, 200, 200]);
});

test("video frames become one layer per frame inside a group", async () => {
  const { doc, host } = setup();
  const frames = [0, 1, 2].map((index) => ({
    index, seed: 3, width: 2, height: 2, offset: { x: 0, y: 0 },
    data: new Uint8Array(16).fill(50 * (index + 1)),
  }));
  const history = doc.historyStates.length;
  const applied = await applyOutcome(host, outcomeFor(doc, "video", frames,
    { bounds: { left: 0, top: 0, right: 48, bottom: 32 }, mask: null }));
  const group = doc.layerById(applied.groupId);
  assert.equal(group.kind, "group");
  assert.equal(group.layers.length, 3);
  assert.deepEqual(group.layers.map((l) => l.pixelAt(0, 0)[0]), [150, 100, 50]);
  assert.equal(doc.historyStates.length, history + 1);
});

test("an upscaled result goes into a new document of the scaled size", async () => {
  const { ps, doc, host } = setup();
  const data = new Uint8Array(64 * 48 * 4).fill(9);
  const applied = await applyOutcome(host, outcomeFor(doc, "upscale",
    [{ index: 0, seed: null, width: 64, height: 48, offset: { x: 16, y: 8 }, data }],
    { bounds: { left: 8, top: 4, right: 40, bottom: 28 }, mask: null }));
  const created = ps.standin.documents.find((d) => d.id === applied.documentId);
  assert.notEqual(created, doc);
  assert.equal(created.width, 96);
  assert.equal(created.height, 64);
  assert.deepEqual(created.layerById(applied.layerIds[0]).boundsNoEffects,
    { left: 16, top: 8, right: 80, bottom: 56 });
});
