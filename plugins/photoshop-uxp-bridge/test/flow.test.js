"use strict";
// Whole flows against a live `aiedit serve` on 127.0.0.1 (real HTTP from Node) and the
// Photoshop stand-in: read → submit → progress → cancel → fetch raw RGBA → new layer.

const test = require("node:test");
const assert = require("node:assert/strict");
const { createPhotoshop } = require("./standin/photoshop");
const { startServer } = require("./helpers/server");
const { FakeDocument, MemoryStorage } = require("./helpers/dom");
const { AieditClient } = require("../src/client");
const { PhotoshopHost } = require("../src/host");
const { JobSession, applyOutcome } = require("../src/job");
const { createPanel } = require("../src/panel");

let server;
let operations;

test.before(async () => {
  server = await startServer();
  operations = await new AieditClient({ baseUrl: server.baseUrl }).operations();
});

test.after(async () => {
  if (server) {
    await server.stop();
  }
});

function operation(id) {
  const op = operations.find((o) => o.id === id);
  assert.ok(op, `the server offers ${id}`);
  return op;
}

/** A fetch that fails the test if Photoshop is in a modal scope while the network is used. */
function modalFreeFetch(ps, log) {
  return async (url, init) => {
    log.push({ url: String(url), method: (init && init.method) || "GET",
      modal: ps.standin.modalDepth > 0 });
    return fetch(url, init);
  };
}

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
  const layer = doc.addLayerNow({ name: "art", bounds: { left: 8, top: 8, right: 88, bottom: 56 },
    pixels });
  return { ps, doc, layer, host: new PhotoshopHost(ps) };
}

function rgbaAt(result, x, y) {
  const i = ((y - result.offset.y) * result.width + (x - result.offset.x)) * 4;
  return Array.from(result.data.subarray(i, i + 4));
}

test("inpaint: the selection is read, sent, and the result lands masked at its offset",
  async () => {
    const { ps, doc, host } = scene();
    doc.selectRectangleNow({ left: 42, top: 26, right: 58, bottom: 40 });
    const net = [];
    const updates = [];
    const session = new JobSession({
      client: new AieditClient({ baseUrl: server.baseUrl, fetch: modalFreeFetch(ps, net) }),
      host, onUpdate: (u) => updates.push(u), pollWait: 5,
    });
    const outcome = await session.run({
      operation: operation("inpaint"), model: "classic-telea",
      params: { prompt: "plain wall", feather: 0, seed: 5 }, source: "composite", margin: 16,
    });
    assert.equal(outcome.state, "succeeded");
    assert.deepEqual(outcome.region.bounds, { left: 26, top: 10, right: 74, bottom: 56 });
    assert.ok(net.length >= 3 && net.every((n) => !n.modal), "no network inside a modal scope");
    assert.ok(net.some((n) => n.method === "POST" && n.url.endsWith("/v1/jobs/raw")));
    assert.ok(net.some((n) => n.url.includes("format=rgba")));
    assert.deepEqual(updates.map((u) => u.phase).slice(0, 2), ["reading", "submitting"]);
    assert.equal(updates.at(-1).phase, "downloading");

    const [result] = outcome.results;
    assert.deepEqual(result.offset, { x: 26, y: 10 });
    assert.equal(result.width, 48);
    assert.equal(result.height, 46);
    assert.deepEqual(rgbaAt(result, 26, 10), doc.compositePixel(26, 10),
      "outside the mask the server returns the pixels it was sent, in place");
    const inside = rgbaAt(result, 43, 27);
    assert.ok(inside[0] < 200 || inside[1] > 50, `the red blob was painted over: ${inside}`);

    const history = doc.historyStates.length;
    const before41 = doc.compositePixel(41, 27);
    const applied = await applyOutcome(host, outcome);
    const layer = doc.layerById(applied.layerIds[0]);
    const seed = result.seed === null ? "" : ` seed ${result.seed}`;
    assert.equal(layer.name, `inpaint: plain wall${seed}`);
    assert.deepEqual(layer.boundsNoEffects, { left: 26, top: 10, right: 74, bottom: 56 },
      "the layer holds the whole result; the selection is its mask");
    assert.deepEqual(layer.pixelAt(43, 27), inside);
    assert.deepEqual(layer.pixelAt(57, 39), rgbaAt(result, 57, 39));
    assert.equal(layer.maskAt(43, 27), 255);
    assert.equal(layer.maskAt(41, 27), 0, "outside the selection the mask hides the layer");
    assert.deepEqual(doc.compositePixel(41, 27), before41, "so the picture is unchanged there");
    assert.deepEqual(doc.compositePixel(43, 27), inside);
    assert.equal(doc.historyStates.length, history + 1);
    assert.equal(doc.layers[0], layer);
  });

test("a queued job shows its queue position and Cancel cancels it on the server", async () => {
  const { ps, doc, host } = scene();
  const client = new AieditClient({ baseUrl: server.baseUrl });
  const side = 2048;
  const blocker = await client.submit(
    { operation: "restore", params: {}, region: { x: 0, y: 0, width: side, height: side } },
    { image: { width: side, height: side, bytes: new Uint8Array(side * side * 4).fill(77) } });
  const fillers = [];
  try {
    let state = blocker;
    while (state.state === "queued") {
      state = await client.job(blocker.id, 2);
    }
    // queue_position counts the jobs ahead that wait too: a running job and a queued one make 1.
    fillers.push(await client.submit(
      { operation: "upscale", params: {}, region: { x: 0, y: 0, width: 2, height: 2 } },
      { image: { width: 2, height: 2, bytes: new Uint8Array(16) } }));
    const updates = [];
    const session = new JobSession({
      client: new AieditClient({ baseUrl: server.baseUrl, fetch: modalFreeFetch(ps, []) }),
      host, pollWait: 5,
      onUpdate: (u) => {
        updates.push(u);
        if (u.job && u.job.state === "queued" && u.job.queue_position >= 1) {
          session.cancel();
        }
      },
    });
    const layers = doc.layers.length;
    const outcome = await session.run({
      operation: operation("upscale"), params: { scale: 2 }, source: "layer",
    });
    assert.equal(outcome.state, "canceled");
    assert.ok(updates.some((u) => u.job && u.job.queue_position >= 1), "queue position shown");
    assert.equal((await client.job(outcome.job.id)).state, "canceled");
    assert.equal(doc.layers.length, layers, "nothing was added");
  } finally {
    for (const job of [...fillers, blocker]) {
      await client.cancel(job.id).catch(() => {});
    }
  }
});

test("upscale: progress reaches the end and the result opens as a new document", async () => {
  const { ps, doc, host } = scene();
  const updates = [];
  const session = new JobSession({
    client: new AieditClient({ baseUrl: server.baseUrl }), host, pollWait: 5,
    onUpdate: (u) => updates.push(u),
  });
  const outcome = await session.run({
    operation: operation("upscale"), model: "classic-lanczos", params: { scale: 2 },
    source: "layer",
  });
  assert.equal(outcome.state, "succeeded");
  const finished = updates.find((u) => u.phase === "succeeded");
  assert.equal(finished.job.progress.fraction, 1);
  const [result] = outcome.results;
  assert.deepEqual(result.offset, { x: 16, y: 16 });
  assert.deepEqual([result.width, result.height], [160, 96]);
  const applied = await applyOutcome(host, outcome);
  const created = ps.standin.documents.find((d) => d.id === applied.documentId);
  assert.notEqual(created, doc);
  assert.deepEqual([created.width, created.height], [192, 128]);
  const layer = created.layerById(applied.layerIds[0]);
  assert.deepEqual(layer.boundsNoEffects, { left: 16, top: 16, right: 176, bottom: 112 });
  assert.deepEqual(layer.pixelAt(100, 60), rgbaAt(result, 100, 60));
});

test("an inpaint without a selection meets the server's refusal for a classic model", async () => {
  // Without a mask inpaint refines the whole layer, which only diffusion models do: the
  // default classic model's refusal (422, before anything is queued) reaches the user.
  const { ps, host } = scene();
  const net = [];
  const session = new JobSession({
    client: new AieditClient({ baseUrl: server.baseUrl, fetch: modalFreeFetch(ps, net) }), host,
  });
  await assert.rejects(session.run({ operation: operation("inpaint"), params: {} }),
    /needs a mask; refining a whole image takes a diffusion model/);
  assert.deepEqual(net.map((r) => r.method), ["POST"]);
});

test("server errors reach the user as the server's message", async () => {
  const { host } = scene();
  const session = new JobSession({ client: new AieditClient({ baseUrl: server.baseUrl }), host });
  await assert.rejects(session.run({
    operation: operation("upscale"), params: { scale: 99 }, source: "layer",
  }), (err) => err.status === 422 && /scale/.test(err.message));
});

test("the panel connects, builds the form from the server and applies a result", async () => {
  const { ps, doc } = scene();
  doc.selectRectangleNow({ left: 42, top: 26, right: 58, bottom: 40 });
  const document = new FakeDocument();
  const root = document.createElement("div");
  const storage = new MemoryStorage();
  const panel = createPanel(root, { photoshop: ps, storage });
  panel.serverInput.value = server.baseUrl;
  await panel.connectButton.fire("click");
  assert.match(panel.statusLine.textContent, /^Connected/);
  assert.ok(panel.operationSelect.children.some((o) => o.attributes.value === "inpaint"));
  panel.operationSelect.value = "inpaint";
  await panel.operationSelect.fire("change");
  assert.ok("feather" in panel.fieldInputs, "parameters come from the server's schema");
  assert.equal(panel.modelSelect.value, "classic-telea");
  panel.promptInput.value = "plain wall";
  panel.fieldInputs.feather.value = "0";
  await panel.runButton.fire("click");
  assert.match(panel.resultLine.textContent, /1 result\(s\) ready/);
  assert.equal(panel.applyButton.disabled, false);
  const layers = doc.layers.length;
  await panel.applyButton.fire("click");
  assert.equal(doc.layers.length, layers + 1);
  assert.match(doc.layers[0].name, /^inpaint: plain wall/);
  assert.equal(JSON.parse(storage.getItem("aiedit.settings")).server, server.baseUrl);
});

test("outpaint past the canvas grows the canvas and keeps the picture in place", async () => {
  const { doc, host, layer: art } = scene();
  const outcome = await new JobSession({
    client: new AieditClient({ baseUrl: server.baseUrl }), host, pollWait: 5,
  }).run({
    operation: operation("outpaint"), model: "classic-telea",
    params: { left: 8, top: 4, right: 0, bottom: 6 }, source: "composite",
  });
  const [result] = outcome.results;
  assert.deepEqual(result.offset, { x: -8, y: -4 });
  assert.deepEqual([result.width, result.height], [104, 74]);
  const before = doc.compositePixel(40, 30);
  const history = doc.historyStates.length;
  const applied = await applyOutcome(host, outcome);
  assert.deepEqual([doc.width, doc.height], [104, 74]);
  assert.deepEqual(art.pixelAt(48, 34), before, "existing layers moved with the canvas");
  const layer = doc.layerById(applied.layerIds[0]);
  assert.deepEqual(layer.boundsNoEffects, { left: 0, top: 0, right: 104, bottom: 74 });
  assert.deepEqual(layer.pixelAt(48, 34), rgbaAt(result, 40, 30));
  assert.equal(doc.historyStates.length, history + 1, "canvas and layer are one undo step");
});

test("a 16-bit Adobe RGB layer goes to the server as rgba16 and comes back without banding",
  async () => {
    const { colour } = require("./standin/photoshop");
    const ps = createPhotoshop();
    const W = 128;
    const H = 16;
    const doc = ps.standin.openDocument({ width: W, height: H, depth: 16,
      profile: colour.ADOBE_RGB });
    const pixels = new Uint16Array(W * H * 4);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const t = (y * W + x) / (W * H); // 2,048 steps across the layer
        pixels.set([Math.round(6000 + t * 20000), Math.round(9000 + t * 8000), 15000, 32768],
          (y * W + x) * 4);
      }
    }
    const art = doc.addLayerNow({ name: "gradient", bounds: { left: 0, top: 0, right: W,
      bottom: H }, pixels });
    const host = new PhotoshopHost(ps);
    const requests = [];
    const spy = async (url, init) => {
      if (init && init.method === "POST") {
        requests.push(JSON.parse(init.headers["Aiedit-Request"])); // POST /v1/jobs/raw
      }
      return fetch(url, init);
    };
    const outcome = await new JobSession({
      client: new AieditClient({ baseUrl: server.baseUrl, fetch: spy }), host, pollWait: 5,
    }).run({
      operation: operation("upscale"), model: "classic-lanczos", params: { scale: 1 },
      source: "layer",
    });
    assert.equal(requests[0].raw.image.format, "rgba16");
    assert.equal(outcome.results[0].depth, 16);
    const applied = await applyOutcome(host, outcome);
    const layer = doc.layerById(applied.layerIds[0]);
    const levels = new Set();
    let worst = 0;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const a = art.pixelAt(x, y);
        const b = layer.pixelAt(x, y);
        levels.add(b[0]);
        for (let c = 0; c < 3; c++) {
          worst = Math.max(worst, Math.abs(a[c] - b[c]));
        }
      }
    }
    assert.ok(levels.size >= 1024, `${levels.size} distinct red levels kept`);
    assert.ok(worst <= 4, `off by at most ${worst} of 32768 (an 8-bit step is 128)`);
  });

test("a refused Origin header is explained: the origin and the setting that allows it",
  async () => {
    const ps = createPhotoshop();
    ps.standin.openDocument({ width: 8, height: 8, background: [1, 2, 3] });
    const withOrigin = (url, init = {}) =>
      fetch(url, { ...init, headers: { ...(init.headers || {}), Origin: "uxp://aiedit" } });
    const panel = createPanel(new FakeDocument().createElement("div"),
      { photoshop: ps, storage: new MemoryStorage(), fetch: withOrigin });
    panel.serverInput.value = server.baseUrl;
    await panel.connectButton.fire("click");
    assert.match(panel.statusLine.textContent, /'uxp:\/\/aiedit' are not allowed/);
    assert.match(panel.statusLine.textContent, /add the origin named above to AIEDIT_CORS_ORIGINS/);
    const plain = createPanel(new FakeDocument().createElement("div"),
      { photoshop: ps, storage: new MemoryStorage() });
    plain.serverInput.value = server.baseUrl;
    await plain.connectButton.fire("click");
    assert.match(plain.statusLine.textContent, /^Connected/, "without Origin: accepted");
  });
