"use strict";
// Colour, depth and document modes: what the server gets is sRGB converted by Photoshop, and
// results go back converted into the document's profile and depth.

const test = require("node:test");
const assert = require("node:assert/strict");
const { createPhotoshop, colour } = require("./standin/photoshop");
const { PhotoshopHost } = require("../src/host");
const { JobSession, applyOutcome } = require("../src/job");

const W = 16;
const H = 8;

/** sRGB 8-bit colours inside every test profile's gamut, one per pixel. */
function srgbPatch() {
  const data = new Uint8Array(W * H * 4);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      data.set([40 + x * 11, 60 + y * 17, 200 - x * 7, 255], (y * W + x) * 4);
    }
  }
  return data;
}

/** The same colours expressed in `profile` at `depth` bits, as a layer's pixels. */
function patchIn(profile, depth) {
  const srgb = srgbPatch();
  const range = depth === 16 ? 32768 : 255;
  const out = depth === 16 ? new Uint16Array(srgb.length) : new Uint8Array(srgb.length);
  for (let i = 0; i < srgb.length; i += 4) {
    const rgb = colour.rgbToRgb(Array.from(srgb.subarray(i, i + 3), (v) => v / 255),
      colour.SRGB, profile);
    out.set([...rgb.map((v) => Math.round(v * range)), range], i);
  }
  return out;
}

function documentWith({ profile, depth, mode = "rgb", resolution = 72 }) {
  const ps = createPhotoshop();
  const doc = ps.standin.openDocument({
    width: W, height: H, profile, depth, mode, resolution,
    background: mode === "cmyk" ? [10, 200, 30, 0] : [128, 128, 128],
  });
  return { ps, doc, host: new PhotoshopHost(ps) };
}

/** A client that answers every job with the pixels it was sent (an identity operation). */
function identityClient(seen) {
  return {
    async submit(request, files) {
      seen.push({ request, files });
      return { id: "j1", state: "succeeded", results: [{ index: 0, kind: "image" }] };
    },
    async resultRgba() {
      const { request, files } = seen.at(-1);
      return {
        index: 0, kind: "image", seed: 1, width: files.image.width, height: files.image.height,
        offset: { x: request.region.x, y: request.region.y }, data: files.image.bytes,
      };
    },
    async job(id) {
      return { id, state: "succeeded", results: [] };
    },
  };
}

const UPSCALE = { id: "upscale", region: "layer", inputs: { image: "required", mask: "unused" } };
const EDIT = { id: "edit", region: "selection", inputs: { image: "required", mask: "optional" } };

async function roundTrip(profile, depth) {
  const { ps, doc, host } = documentWith({ profile, depth });
  const art = doc.addLayerNow({ name: "art", bounds: { left: 0, top: 0, right: W, bottom: H },
    pixels: patchIn(profile, depth) });
  const seen = [];
  const outcome = await new JobSession({ client: identityClient(seen), host }).run({
    operation: EDIT, params: { prompt: "same" }, source: "layer",
  });
  const sent = seen[0].files.image.bytes;
  const applied = await applyOutcome(host, outcome);
  return { ps, doc, art, sent, layer: doc.layerById(applied.layerIds[0]) };
}

for (const [profile, depth] of [[colour.ADOBE_RGB, 16], [colour.DISPLAY_P3, 16],
  [colour.ADOBE_RGB, 8], [colour.DISPLAY_P3, 8]]) {
  test(`${profile} ${depth}-bit: the server gets sRGB and the result matches the layer`,
    async () => {
      const { art, sent, layer } = await roundTrip(profile, depth);
      const range = depth === 16 ? 32768 : 255;
      const expected = new Uint8Array(sent.length);
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const rgb = colour.rgbToRgb(art.pixelAt(x, y).slice(0, 3).map((v) => v / range),
            profile, colour.SRGB);
          expected.set([...rgb.map((v) => Math.round(v * 255)), 255], (y * W + x) * 4);
        }
      }
      let worstSent = 0;
      for (let i = 0; i < sent.length; i++) {
        worstSent = Math.max(worstSent, Math.abs(sent[i] - expected[i]));
      }
      assert.ok(worstSent <= 1, `the upload is the sRGB picture (off by ${worstSent})`);
      // Read in the document's own profile the upload would be far off (the old behaviour).
      const raw = patchIn(profile, 8);
      assert.ok(raw.some((v, i) => Math.abs(v - expected[i]) > 10), "the profiles do differ");
      const codeValue = depth === 16 ? 32768 / 255 : 1;
      let worst = 0;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const a = art.pixelAt(x, y);
          const b = layer.pixelAt(x, y);
          for (let c = 0; c < 3; c++) {
            worst = Math.max(worst, Math.abs(a[c] - b[c]) / codeValue);
          }
        }
      }
      assert.ok(worst <= 1, `round trip within one 8-bit code value (worst ${worst.toFixed(2)})`);
    });
}

for (const [mode, name] of [["cmyk", "CMYK"], ["lab", "Lab"]]) {
  test(`a ${name} document gets a clear message and nothing is read as RGBA`, async () => {
    const { ps, doc, host } = documentWith({ mode, depth: 8 });
    const seen = [];
    await assert.rejects(new JobSession({ client: identityClient(seen), host }).run({
      operation: UPSCALE, params: {}, source: "composite",
    }), (err) => err.code === "document_mode" && err.copyHelps &&
      err.message.includes(`is a ${name} document`) && /RGB copy/.test(err.message));
    assert.equal(seen.length, 0, "nothing was sent");
    assert.equal(ps.standin.calls.filter((c) => c.name === "getPixels").length, 0);
    assert.equal(ps.app.activeDocument, doc);
  });

  test(`"Work on an RGB copy" converts a duplicate of a ${name} document`, async () => {
    const { ps, doc, host } = documentWith({ mode, depth: 16 });
    const before = doc.compositePixel(3, 3);
    const copy = await host.workingCopy(doc);
    assert.notEqual(copy, doc);
    assert.equal(copy.mode, ps.constants.DocumentMode.RGB);
    assert.equal(doc.mode, ps.constants.DocumentMode[name.toUpperCase()], "the original stays");
    assert.deepEqual(doc.compositePixel(3, 3), before);
    assert.equal(ps.app.activeDocument, copy);
    const seen = [];
    const outcome = await new JobSession({ client: identityClient(seen), host }).run({
      operation: UPSCALE, params: {}, source: "composite",
    });
    assert.equal(outcome.state, "succeeded");
    assert.equal(seen[0].files.image.bytes.length, W * H * 4);
  });
}

test("a 32-bit document is refused with a message; its copy is 16-bit", async () => {
  const { ps, doc, host } = documentWith({ profile: colour.SRGB, depth: 32 });
  assert.throws(() => host.checkDocument(doc), (err) => err.code === "document_depth" &&
    /32 bits per channel/.test(err.message));
  const copy = await host.workingCopy(doc);
  assert.equal(copy.bitsPerChannel, ps.constants.BitsPerChannelType.SIXTEEN);
  host.checkDocument(copy);
});

test("an upscaled document keeps the profile, the depth and the print size", async () => {
  const { ps, doc, host } = documentWith({ profile: colour.ADOBE_RGB, depth: 16,
    resolution: 300 });
  doc.addLayerNow({ name: "art", bounds: { left: 0, top: 0, right: W, bottom: H },
    pixels: patchIn(colour.ADOBE_RGB, 16) });
  const data = new Uint8Array(W * 2 * H * 2 * 4).fill(200);
  const applied = await applyOutcome(host, {
    doc, operationId: "upscale", name: "upscale",
    region: { bounds: { left: 0, top: 0, right: W, bottom: H }, mask: null },
    results: [{ index: 0, seed: null, width: W * 2, height: H * 2, offset: { x: 0, y: 0 }, data }],
  });
  const created = ps.standin.documents.find((d) => d.id === applied.documentId);
  assert.notEqual(created, doc);
  assert.equal(created.resolution, 600);
  assert.equal(created.colorProfileName, colour.ADOBE_RGB);
  assert.equal(created.bitsPerChannel, ps.constants.BitsPerChannelType.SIXTEEN);
  assert.deepEqual([created.width, created.height], [W * 2, H * 2]);
});

test("the panel offers \"Work on an RGB copy\" for a CMYK document and runs on the copy",
  async () => {
    const { FakeDocument, MemoryStorage } = require("./helpers/dom");
    const { createPanel } = require("../src/panel");
    const { ps, doc } = documentWith({ mode: "cmyk", depth: 8 });
    const panel = createPanel(new FakeDocument().createElement("div"), {
      photoshop: ps, storage: new MemoryStorage(), fetch: async () => {
        throw new Error("no network in this test");
      },
    });
    panel.operations = [{ ...UPSCALE, params_schema: { properties: {} }, models: [] }];
    panel.operationSelect.appendChild(panel.document.createElement("option"));
    panel.operationSelect.value = "upscale";
    panel.showOperation();
    assert.equal(panel.copyButton.hidden, true);
    await panel.runButton.fire("click");
    assert.match(panel.statusLine.textContent, /is a CMYK document/);
    assert.equal(panel.copyButton.hidden, false);
    await panel.copyButton.fire("click");
    assert.notEqual(ps.app.activeDocument, doc);
    assert.equal(ps.app.activeDocument.mode, ps.constants.DocumentMode.RGB);
    assert.match(panel.statusLine.textContent, /an RGB copy: press Run again/);
    assert.equal(panel.copyButton.hidden, true);
  });
