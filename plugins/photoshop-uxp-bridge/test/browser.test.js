"use strict";
// The results browser against a live `aiedit serve` and the Photoshop stand-in: keep and
// discard across runs, a panel reload while a job waits, previews, and results that follow
// the document (two outpaints, a closed document, a crop).

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const { createPhotoshop } = require("./standin/photoshop");
const { createUxp } = require("./standin/uxp");
const { startServer } = require("./helpers/server");
const { FakeDocument, MemoryStorage } = require("./helpers/dom");
const { AieditClient } = require("../src/client");
const { createPanel } = require("../src/panel");
const { PREVIEW_NAME } = require("../src/host");

let server;

test.before(async () => {
  server = await startServer();
});

test.after(async () => {
  if (server) {
    await server.stop();
  }
});

function scene() {
  const ps = createPhotoshop();
  const doc = ps.standin.openDocument({ width: 96, height: 64, background: [240, 240, 240] });
  const pixels = new Uint8Array(80 * 48 * 4);
  for (let y = 0; y < 48; y++) {
    for (let x = 0; x < 80; x++) {
      const blob = x >= 36 && x < 48 && y >= 20 && y < 30;
      pixels.set(blob ? [255, 0, 0, 255] : [40 + x, 60 + y, 90, 255], (y * 80 + x) * 4);
    }
  }
  const art = doc.addLayerNow({ name: "art", bounds: { left: 8, top: 8, right: 88, bottom: 56 },
    pixels });
  return { ps, doc, art };
}

async function openPanel(ps, { storage = new MemoryStorage(), uxp = createUxp() } = {}) {
  const root = new FakeDocument().createElement("div");
  const panel = createPanel(root, { photoshop: ps, storage, uxp, pollWait: 2 });
  await panel.resumed;
  panel.serverInput.value = server.baseUrl;
  await panel.connectButton.fire("click");
  assert.match(panel.statusLine.textContent, /^Connected/);
  return { panel, storage, uxp };
}

async function choose(panel, operation, { prompt = "", fields = {}, model = null } = {}) {
  panel.operationSelect.value = operation;
  await panel.operationSelect.fire("change");
  if (model) {
    panel.modelSelect.value = model;
  }
  panel.promptInput.value = prompt;
  for (const [name, value] of Object.entries(fields)) {
    panel.fieldInputs[name].value = String(value);
  }
}

function entries(panel) {
  return panel.journal.entries;
}

test("two runs keep both results; one is applied, the other discarded", async () => {
  const { ps, doc, art } = scene();
  doc.selectRectangleNow({ left: 42, top: 26, right: 58, bottom: 40 });
  const { panel } = await openPanel(ps);
  await choose(panel, "inpaint", { prompt: "plain wall", fields: { feather: 0 } });
  await panel.runButton.fire("click");
  await choose(panel, "inpaint", { prompt: "brick wall", fields: { feather: 2 } });
  await panel.runButton.fire("click");

  const [second, first] = entries(panel);
  assert.equal(first.name, "inpaint: plain wall");
  assert.equal(second.name, "inpaint: brick wall");
  assert.deepEqual([first.results[0].status, second.results[0].status], ["new", "new"],
    "running again dropped nothing");
  const firstView = panel.browser.views[first.id];
  assert.match(firstView.results[0].img.attributes.src, /^data:image\/jpeg;base64,/);
  assert.match(firstView.root.children[1].textContent, /classic-telea · feather 0/);

  const layers = doc.layers.length;
  const artPixels = Array.from(art.raster.data);
  const secondView = panel.browser.views[second.id];
  secondView.results[0].box.checked = false;
  await secondView.results[0].box.fire("change");
  await panel.applyButton.fire("click");
  assert.equal(doc.layers.length, layers + 1, "one result applied");
  assert.match(doc.layers[0].name, /^inpaint: plain wall/);
  assert.equal(doc.layers[0].maskAt(43, 27), 255);
  assert.equal(doc.layers[0].maskAt(30, 27), 0);
  assert.deepEqual(Array.from(art.raster.data), artPixels, "the base layer is untouched");
  assert.equal(entries(panel)[1].results[0].status, "applied");
  assert.equal(entries(panel)[0].results[0].status, "new", "the unchecked one waits");
  assert.equal(panel.applyButton.disabled, false);

  const check = panel.browser.views[second.id].results[0].box;
  check.checked = true;
  await check.fire("change");
  await panel.discardButton.fire("click");
  assert.equal(doc.layers.length, layers + 1, "discarding adds nothing");
  assert.equal(entries(panel)[0].results[0].status, "discarded");
  assert.equal(entries(panel).length, 2, "both jobs stay in the history");
  assert.equal(panel.applyButton.disabled, true);

  const client = new AieditClient({ baseUrl: server.baseUrl });
  for (const id of [first.id, second.id]) {
    await assert.rejects(client.job(id), (err) => err.status === 404,
      "a job whose results are all settled is deleted on the server");
  }

  await choose(panel, "upscale");
  await panel.browser.views[first.id].use.fire("click");
  assert.equal(panel.operationSelect.value, "inpaint");
  assert.equal(panel.promptInput.value, "plain wall");
  assert.equal(panel.fieldInputs.feather.value, "0");
});

test("a job in flight survives a panel reload and its result is applied with its mask",
  async () => {
    const client = new AieditClient({ baseUrl: server.baseUrl });
    const side = 2048;
    const blocker = await client.submit(
      { operation: "restore", params: {}, region: { x: 0, y: 0, width: side, height: side } },
      { image: { width: side, height: side, bytes: new Uint8Array(side * side * 4).fill(77) } });
    let state = blocker;
    while (state.state === "queued") {
      state = await client.job(blocker.id, 2);
    }
    const { ps, doc } = scene();
    const selection = new Uint8Array(96 * 64);
    for (let y = 26; y < 40; y++) {
      for (let x = 42; x < 58; x++) {
        selection[y * 96 + x] = x < 50 ? 255 : 128; // a soft right half
      }
    }
    doc.setSelectionMask(selection);
    const storage = new MemoryStorage();
    const uxp = createUxp();
    const { panel: before } = await openPanel(ps, { storage, uxp });
    await choose(before, "inpaint", { prompt: "plain wall", fields: { feather: 0 } });
    const running = before.runButton.fire("click");
    while (!entries(before).length) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const [entry] = entries(before);
    assert.equal(entry.state, "queued", "the job waits behind the blocker");
    assert.ok(fs.readdirSync(uxp.standin.dataFolder).some((n) => n.startsWith("mask-")),
      "the selection mask is in the plugin's data folder");
    before.close(); // the panel reloads: the old one stops, the new one starts from storage
    await running;
    assert.equal(entries(before)[0].state, "queued", "the closed panel wrote nothing more");
    doc.setSelectionMask(null); // the selection is gone by the time the job finishes

    const reloadedUxp = createUxp({ dataFolder: uxp.standin.dataFolder });
    const root = new FakeDocument().createElement("div");
    const after = createPanel(root, { photoshop: ps, storage, uxp: reloadedUxp, pollWait: 2 });
    assert.match(after.statusLine.textContent, /Following 1 job\(s\)/);
    assert.equal(after.runButton.disabled, true);
    await after.resumed;
    const [resumed] = after.journal.entries;
    assert.equal(resumed.id, entry.id);
    assert.equal(resumed.state, "succeeded");
    assert.match(after.resultLine.textContent, /1 result\(s\) ready: inpaint: plain wall/);
    const layers = doc.layers.length;
    await after.applyButton.fire("click");
    assert.equal(doc.layers.length, layers + 1);
    const layer = doc.layers[0];
    assert.deepEqual([layer.maskAt(43, 27), layer.maskAt(52, 27), layer.maskAt(41, 27)],
      [255, 128, 0], "the mask saved before the reload, soft edge included");
  });

test("a result previews on the canvas without committing; Apply replaces the preview",
  async () => {
    const { ps, doc, art } = scene();
    doc.selectRectangleNow({ left: 42, top: 26, right: 58, bottom: 40 });
    const { panel } = await openPanel(ps);
    await choose(panel, "inpaint", { prompt: "plain wall", fields: { feather: 0 } });
    await panel.runButton.fire("click");
    const [entry] = entries(panel);
    const preview = () => doc.layers.find((l) => l.name === PREVIEW_NAME);
    const layers = doc.layers.length;
    await panel.browser.views[entry.id].results[0].preview.fire("click");
    assert.ok(preview(), "the preview layer is on the canvas");
    assert.equal(preview().maskAt(41, 27), 0, "masked like the real result");
    assert.equal(doc.activeLayers[0], art, "the active layer stays the user's");
    assert.equal(panel.browser.views[entry.id].results[0].preview.textContent, "Hide preview");
    await panel.browser.views[entry.id].results[0].preview.fire("click");
    assert.equal(preview(), undefined, "hidden again");
    assert.equal(doc.layers.length, layers);
    await panel.browser.views[entry.id].results[0].preview.fire("click");
    await panel.applyButton.fire("click");
    assert.equal(preview(), undefined, "the preview made way for the real layer");
    assert.equal(doc.layers.length, layers + 1);
    assert.match(doc.layers[0].name, /^inpaint: plain wall/);
  });

test("two outpaint results applied in turn both land on the pixels they were made for",
  async () => {
    const { ps, doc } = scene();
    const { panel } = await openPanel(ps);
    await choose(panel, "outpaint", { model: "classic-telea",
      fields: { left: 8, top: 0, right: 0, bottom: 0 } });
    await panel.runButton.fire("click");
    await choose(panel, "outpaint", { model: "classic-telea",
      fields: { left: 0, top: 6, right: 0, bottom: 0 } });
    await panel.runButton.fire("click");
    const [b, a] = entries(panel);
    const ra = await panel.browser.download(a, a.results[0]);
    const rb = await panel.browser.download(b, b.results[0]);
    assert.deepEqual([ra.offset, rb.offset], [{ x: -8, y: 0 }, { x: 0, y: -6 }]);
    const at = (r, x, y) => {
      const i = ((y - r.offset.y) * r.width + (x - r.offset.x)) * 4;
      return Array.from(r.data.subarray(i, i + 4));
    };
    const checkA = at(ra, -4, 30); // a pixel only job A made (left of the old canvas)
    const checkB = at(rb, 50, -3); // a pixel only job B made (above the old canvas)
    await panel.applyButton.fire("click");
    assert.deepEqual([doc.width, doc.height], [104, 70]);
    const layerB = doc.layers[0];
    const layerA = doc.layers[1];
    assert.match(layerA.name, /^outpaint/);
    assert.deepEqual(layerA.pixelAt(-4 + 8, 30 + 6), checkA);
    assert.deepEqual(layerB.pixelAt(50 + 8, -3 + 6), checkB);
    assert.deepEqual(layerA.boundsNoEffects, { left: 0, top: 6, right: 104, bottom: 70 });
    assert.deepEqual(layerB.boundsNoEffects, { left: 8, top: 0, right: 104, bottom: 70 });
  });

test("a closed document or a crop during a job asks before placing anything", async () => {
  const { ps, doc } = scene();
  doc.selectRectangleNow({ left: 42, top: 26, right: 58, bottom: 40 });
  const { panel } = await openPanel(ps);
  await choose(panel, "inpaint", { prompt: "plain wall", fields: { feather: 0 } });
  await panel.runButton.fire("click");
  await ps.core.executeAsModal(() => doc.crop({ left: 0, top: 0, right: 92, bottom: 64 }),
    { commandName: "crop" });
  const layers = doc.layers.length;
  await panel.applyButton.fire("click");
  assert.equal(doc.layers.length, layers, "nothing placed yet");
  assert.equal(panel.browser.choiceBox.hidden, false);
  assert.match(panel.browser.choiceText.textContent,
    /canvas of "Untitled" changed from 96×64 to 92×64 px/);
  await panel.browser.placeButton.fire("click");
  assert.equal(doc.layers.length, layers + 1, "placed at the old position on request");
  assert.deepEqual(doc.layers[0].boundsNoEffects, { left: 10, top: 0, right: 90, bottom: 64 });

  const other = ps.standin.openDocument({ width: 40, height: 40, name: "other",
    background: [1, 2, 3] });
  ps.standin.activeDocument = doc;
  doc.selectRectangleNow({ left: 20, top: 20, right: 30, bottom: 30 });
  await panel.runButton.fire("click");
  doc.closeWithoutSaving();
  ps.standin.activeDocument = other;
  const otherLayers = other.layers.length;
  await panel.applyButton.fire("click");
  assert.match(panel.browser.choiceText.textContent,
    /"Untitled", where "inpaint: plain wall" ran, is closed/);
  await panel.browser.dropButton.fire("click");
  assert.equal(other.layers.length, otherLayers, "discarded: nothing placed");
  assert.equal(entries(panel)[0].results[0].status, "discarded");
  assert.equal(panel.browser.choiceBox.hidden, true);
});

test("\"Get a key\" and \"Buy credits\" open the server's account pages", async () => {
  const { ps } = scene();
  const { panel, uxp } = await openPanel(ps);
  await panel.keysButton.fire("click");
  await panel.creditsButton.fire("click");
  assert.deepEqual(uxp.standin.opened,
    [`${server.baseUrl}/account/keys`, `${server.baseUrl}/account/credits`]);
  assert.match(panel.statusLine.textContent, /Opened .*\/account\/credits/);
});
