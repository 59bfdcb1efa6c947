"use strict";
// Real AI jobs from the panel: a live `aiedit serve` with the tiny random diffusion pipelines
// (see helpers/tiny.js), the Photoshop stand-in, real HTTP from Node.

const test = require("node:test");
const assert = require("node:assert/strict");
const { createPhotoshop } = require("./standin/photoshop");
const { startServer } = require("./helpers/server");
const { tinyModelsEnv } = require("./helpers/tiny");
const { FakeDocument, MemoryStorage } = require("./helpers/dom");
const { AieditClient } = require("../src/client");
const { createPanel } = require("../src/panel");

const STEPS = 150; // the most the server allows: long enough to catch the job mid-run
let server;

test.before(async () => {
  server = await startServer({ env: tinyModelsEnv() });
});

test.after(async () => {
  if (server) {
    await server.stop();
  }
});

async function connectedPanel(ps) {
  const root = new FakeDocument().createElement("div");
  const panel = createPanel(root, { photoshop: ps, storage: new MemoryStorage() });
  panel.serverInput.value = server.baseUrl;
  await panel.connectButton.fire("click");
  assert.match(panel.statusLine.textContent, /^Connected/);
  return panel;
}

async function waitForDenoising(client, panel) {
  while (!(panel.session && panel.session.jobId)) {
    await new Promise((r) => setTimeout(r, 10));
  }
  let job = await client.job(panel.session.jobId);
  while (!(job.state === "running" && job.progress.stage === "denoising" &&
    job.progress.step >= 1)) {
    assert.ok(["queued", "running"].includes(job.state), `job ended early: ${job.state}`);
    job = await client.job(job.id, 5);
  }
  return job;
}

test("Cancel stops a running diffusion job on the server and adds no layer", async () => {
  const ps = createPhotoshop();
  const doc = ps.standin.openDocument({ width: 96, height: 64, background: [200, 200, 200] });
  const panel = await connectedPanel(ps);
  panel.operationSelect.value = "generate";
  await panel.operationSelect.fire("change");
  panel.modelSelect.value = "tiny-sdxl";
  panel.promptInput.value = "a slow painting";
  panel.fieldInputs.steps.value = String(STEPS);
  panel.fieldInputs.width.value = "128";
  panel.fieldInputs.height.value = "128";
  const layers = doc.layers.length;
  const history = doc.historyStates.length;

  const client = new AieditClient({ baseUrl: server.baseUrl });
  const running = panel.runButton.fire("click");
  const seen = await waitForDenoising(client, panel);
  assert.equal(seen.progress.total, STEPS);
  assert.equal(panel.cancelButton.disabled, false, "Cancel is offered while the job runs");
  await panel.cancelButton.fire("click");
  await running;

  const job = await client.job(seen.id);
  assert.equal(job.state, "canceled");
  assert.ok(job.progress.step < STEPS, `stopped at step ${job.progress.step} of ${STEPS}`);
  assert.deepEqual(job.results, []);
  assert.equal(panel.statusLine.textContent, "Canceled.");
  assert.equal(panel.resultLine.textContent, "");
  assert.equal(panel.applyButton.disabled, true, "nothing to apply");
  assert.equal(doc.layers.length, layers, "no layer was added");
  assert.equal(doc.historyStates.length, history);
});

test("control layers, a LoRA, a style and variations reach the server as the panel shows them",
  async () => {
    const { recordingFetch } = require("./helpers/multipart");
    const ps = createPhotoshop();
    const doc = ps.standin.openDocument({ width: 64, height: 48, background: [200, 200, 200] });
    const sketch = new Uint8Array(64 * 48 * 4);
    for (let y = 0; y < 48; y++) {
      for (let x = 0; x < 64; x++) {
        const line = Math.abs(x - y) < 2 || x === 40;
        sketch.set(line ? [255, 255, 255, 255] : [0, 0, 0, 255], (y * 64 + x) * 4);
      }
    }
    const lines = doc.addLayerNow({ name: "lines", bounds: { left: 0, top: 0, right: 64,
      bottom: 48 }, pixels: sketch });
    doc.addLayerNow({ name: "paint", bounds: { left: 8, top: 8, right: 40, bottom: 40 },
      pixels: new Uint8Array(32 * 32 * 4).fill(120) });
    const posts = [];
    const root = new FakeDocument().createElement("div");
    const panel = createPanel(root, { photoshop: ps, storage: new MemoryStorage(),
      fetch: recordingFetch(posts) });
    panel.serverInput.value = server.baseUrl;
    await panel.connectButton.fire("click");
    panel.operationSelect.value = "generate";
    await panel.operationSelect.fire("change");
    panel.modelSelect.value = "tiny-sdxl";
    await panel.modelSelect.fire("change");
    assert.ok(!("control" in panel.fieldInputs), "control layers have their own widgets");
    panel.promptInput.value = "a castle";
    panel.fieldInputs.steps.value = "2";
    panel.fieldInputs.count.value = "2";
    panel.fieldInputs.seed.value = "11";
    await panel.creative.addControlButton.fire("click");
    const [control] = panel.creative.controlRows;
    assert.deepEqual(control.layer.children.map((o) => o.textContent),
      ["paint", "lines", "Background"]);
    control.layer.value = String(lines.id);
    control.kind.value = "canny";
    control.strength.value = "0.8";
    await panel.creative.addLoraButton.fire("click");
    const [lora] = panel.creative.loraRows;
    assert.equal(lora.id.value, "tiny-lora-sdxl", "installed LoRAs that fit the base come first");
    const bases = lora.id.children.map((o) =>
      panel.catalog.models.find((m) => m.id === o.attributes.value).base);
    assert.ok(bases.every((b) => b === "sdxl"), `only LoRAs for the model's base: ${bases}`);
    lora.weight.value = "0.5";
    assert.ok(panel.creative.style.children.some((o) => o.attributes.value === "photo"));
    panel.creative.style.value = "photo";
    await panel.runButton.fire("click");

    const sent = posts.find((p) => /\/v1\/jobs(\/raw)?$/.test(p.url));
    assert.ok(sent, `the job was sent: ${panel.statusLine.textContent}`);
    assert.deepEqual(sent.request.params.control,
      [{ kind: "canny", input: "control0", strength: 0.8 }]);
    assert.deepEqual(sent.request.params.loras, [{ id: "tiny-lora-sdxl", weight: 0.5 }]);
    assert.equal(sent.request.style, "photo");
    assert.equal(sent.request.params.count, 2);
    assert.deepEqual(sent.request.raw.control0, { width: 64, height: 48 });
    assert.deepEqual(sent.request.region, { x: 0, y: 0, width: 64, height: 48 });
    assert.deepEqual(Array.from(sent.parts.control0), Array.from(sketch),
      "the control part is the chosen layer over the image's region, not the composite");
    const [entry] = panel.journal.entries;
    assert.equal(entry.state, "succeeded", panel.statusLine.textContent);
    assert.deepEqual(entry.results.map((r) => r.seed), [11, 12], "two variations, own seeds");
    assert.match(panel.browser.views[entry.id].root.children[1].textContent, /style photo/);

    await panel.browser.views[entry.id].use.fire("click");
    assert.equal(panel.creative.controlRows.length, 1, "Use these settings brings them back");
    assert.equal(panel.creative.controlRows[0].layer.value, String(lines.id));
    assert.equal(panel.creative.loraRows[0].weight.value, "0.5");
    assert.equal(panel.creative.style.value, "photo");
  });

test("a reference layer as control: used where the server can, else its refusal is shown",
  async () => {
  const ps = createPhotoshop();
  const doc = ps.standin.openDocument({ width: 64, height: 48, background: [200, 200, 200] });
  const ref = doc.addLayerNow({ name: "look", bounds: { left: 0, top: 0, right: 64, bottom: 48 },
    pixels: new Uint8Array(64 * 48 * 4).fill(90) });
  const panel = await connectedPanel(ps);
  panel.operationSelect.value = "generate";
  await panel.operationSelect.fire("change");
  panel.modelSelect.value = "tiny-sdxl";
  await panel.modelSelect.fire("change");
  panel.promptInput.value = "a castle";
  panel.fieldInputs.steps.value = "2";
  await panel.creative.addControlButton.fire("click");
  panel.creative.controlRows[0].layer.value = String(ref.id);
  panel.creative.controlRows[0].kind.value = "reference";
  const client = new AieditClient({ baseUrl: server.baseUrl });
  let answer = null;
  try {
    await client.submit({ operation: "generate", model: "tiny-sdxl",
      params: { prompt: "a castle", steps: 2, control: [{ kind: "reference", input: "control0" }] },
      region: { x: 0, y: 0, width: 64, height: 48 } }, {
      image: { width: 64, height: 48, bytes: new Uint8Array(64 * 48 * 4) },
      control0: { width: 64, height: 48, bytes: new Uint8Array(64 * 48 * 4) } });
  } catch (err) {
    answer = err;
  }
  await panel.runButton.fire("click");
  if (answer) {
    assert.equal(panel.statusLine.textContent, answer.message, "the server's words reach the user");
    assert.equal(panel.statusLine.className, "status error");
    assert.equal(panel.journal.entries.length, 0);
  } else {
    assert.equal(panel.journal.entries[0].state, "succeeded");
  }
});

test("edit sends the chosen reference layer over the same region", async () => {
  const { recordingFetch } = require("./helpers/multipart");
  const ps = createPhotoshop();
  const doc = ps.standin.openDocument({ width: 64, height: 48, background: [200, 200, 200] });
  const look = new Uint8Array(64 * 48 * 4);
  for (let i = 0; i < look.length; i += 4) {
    look.set([i % 251, 30, 200, 255], i);
  }
  const ref = doc.addLayerNow({ name: "look", bounds: { left: 0, top: 0, right: 64, bottom: 48 },
    pixels: look });
  doc.addLayerNow({ name: "art", bounds: { left: 0, top: 0, right: 64, bottom: 48 },
    pixels: new Uint8Array(64 * 48 * 4).fill(60) });
  doc.selectRectangleNow({ left: 16, top: 8, right: 40, bottom: 30 });
  const posts = [];
  const root = new FakeDocument().createElement("div");
  const panel = createPanel(root, { photoshop: ps, storage: new MemoryStorage(),
    fetch: recordingFetch(posts) });
  panel.serverInput.value = server.baseUrl;
  await panel.connectButton.fire("click");
  panel.operationSelect.value = "edit";
  await panel.operationSelect.fire("change");
  panel.modelSelect.value = "tiny-qwen-image-edit-plus";
  await panel.modelSelect.fire("change");
  panel.promptInput.value = "make it look like the reference";
  panel.fieldInputs.steps.value = "2";
  panel.creative.reference.value = String(ref.id);
  await panel.runButton.fire("click");
  const sent = posts.find((p) => /\/v1\/jobs(\/raw)?$/.test(p.url));
  const { x, y, width, height } = sent.request.region;
  assert.deepEqual(sent.request.raw.reference, { width, height });
  const expected = new Uint8Array(width * height * 4);
  for (let row = 0; row < height; row++) {
    expected.set(look.subarray(((y + row) * 64 + x) * 4, ((y + row) * 64 + x + width) * 4),
      row * width * 4);
  }
  assert.deepEqual(Array.from(sent.parts.reference), Array.from(expected));
  assert.equal(panel.journal.entries[0].state, "succeeded", panel.statusLine.textContent);
});

/** A fetch that logs URLs; with `stream: false` /events answers carry no readable body. */
function loggingFetch(urls, { stream = true } = {}) {
  return async (url, init) => {
    urls.push(String(url));
    const response = await fetch(url, init);
    if (stream || !String(url).includes("/events")) {
      return response;
    }
    await response.body.cancel();
    return {
      ok: response.ok, status: response.status, statusText: response.statusText,
      headers: response.headers, body: null, json: async () => ({}),
    };
  };
}

for (const stream of [true, false]) {
  test(`step previews show in the progress area (${stream ? "event stream" : "long-polls"})`,
    async () => {
      const ps = createPhotoshop();
      ps.standin.openDocument({ width: 96, height: 64, background: [200, 200, 200] });
      const urls = [];
      const root = new FakeDocument().createElement("div");
      const panel = createPanel(root, { photoshop: ps, storage: new MemoryStorage(),
        fetch: loggingFetch(urls, { stream }), pollWait: 1 });
      panel.serverInput.value = server.baseUrl;
      await panel.connectButton.fire("click");
      panel.operationSelect.value = "generate";
      await panel.operationSelect.fire("change");
      panel.modelSelect.value = "tiny-sdxl";
      panel.promptInput.value = "a slow painting";
      panel.fieldInputs.steps.value = "80";
      panel.fieldInputs.width.value = "128";
      panel.fieldInputs.height.value = "128";
      const shown = [];
      const onUpdate = panel.onUpdate.bind(panel);
      panel.onUpdate = (u) => {
        if (u.phase === "preview") {
          shown.push(u.preview.step);
        }
        onUpdate(u);
      };
      await panel.runButton.fire("click");
      assert.equal(panel.journal.entries[0].state, "succeeded", panel.statusLine.textContent);
      assert.ok(shown.length >= 1, "at least one step preview was shown");
      assert.ok(shown.every((step, i) => i === 0 || step > shown[i - 1]), `in order: ${shown}`);
      assert.ok(shown.at(-1) < 80);
      assert.ok(urls.some((u) => u.includes("/events")), "the event stream was tried");
      const polls = urls.filter((u) => /\/v1\/jobs\/[^/?]+\?wait=/.test(u)).length;
      if (stream) {
        assert.equal(polls, 0, "no long-polls while the stream works");
      } else {
        assert.ok(polls >= 1, "long-polls when the stream cannot be read");
      }
      assert.match(panel.previewImage.attributes.src, /^data:image\/png;base64,iVBORw0KGgo/);
      assert.equal(panel.previewImage.hidden, true, "hidden again once the job is done");
    });
}

async function until(check, what, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("live mode re-renders the preview layer after a stroke; Apply makes a real layer",
  async () => {
    const { LIVE_NAME } = require("../src/host");
    const ps = createPhotoshop();
    const doc = ps.standin.openDocument({ width: 64, height: 64, background: [255, 255, 255] });
    const paint = doc.addLayerNow({ name: "paint", bounds: { left: 0, top: 0, right: 64,
      bottom: 64 }, pixels: new Uint8Array(64 * 64 * 4).fill(255) });
    const root = new FakeDocument().createElement("div");
    const urls = [];
    const panel = createPanel(root, { photoshop: ps, storage: new MemoryStorage(),
      fetch: async (url, init) => {
        urls.push(`${(init && init.method) || "GET"} ${url}`);
        return fetch(url, init);
      }, liveIntervalMs: 50 });
    panel.serverInput.value = server.baseUrl;
    await panel.connectButton.fire("click");
    panel.operationSelect.value = "generate";
    await panel.operationSelect.fire("change");
    panel.modelSelect.value = "tiny-sdxl";
    panel.promptInput.value = "a red ball";
    panel.fieldInputs.steps.value = "2";
    panel.fieldInputs.strength.value = "0.6";
    const history = doc.historyStates.length;
    await panel.liveButton.fire("click");
    const live = panel.live;
    assert.ok(live, panel.statusLine.textContent);
    assert.equal(live.frames, 1, "the first frame renders at once");
    const layer = () => doc.layers.find((l) => l.name === LIVE_NAME);
    assert.ok(layer(), "the live layer is there");
    assert.equal(doc.activeLayers[0], paint, "painting still goes to the user's layer");
    assert.equal(doc.historyStates.length, history + 1, "one history step per frame");
    const before = Array.from(layer().raster.data);

    // A brush stroke: Photoshop changes the layer and announces a new history state.
    for (let y = 20; y < 44; y++) {
      for (let x = 20; x < 44; x++) {
        paint.raster.data.set([0.9, 0.1, 0.1, 1], (y * 64 + x) * 4);
      }
    }
    ps.standin.notify("historyStateChanged", {});
    await until(() => live.frames === 2 && !live.sending, "the frame after the stroke");
    assert.notDeepEqual(Array.from(layer().raster.data), before, "the frame follows the stroke");

    // Nothing changed: a notification sends nothing (same canvas, same frame).
    const frames = urls.filter((u) => u.includes("/frames")).length;
    ps.standin.notify("historyStateChanged", {});
    await until(() => live.skipped >= 1 && !live.sending && !live.timer, "the skipped frame");
    assert.equal(urls.filter((u) => u.includes("/frames")).length, frames);

    // A new prompt: the next frame carries it.
    panel.promptInput.value = "a blue ball";
    await panel.promptInput.fire("input");
    await until(() => live.frames === 3 && !live.sending, "the frame with the new prompt");
    assert.equal(live.params.prompt, "a blue ball");

    const layers = doc.layers.length;
    await panel.liveApplyButton.fire("click");
    assert.equal(doc.layers.length, layers + 1);
    const applied = doc.layers.find((l) => /^live: a blue ball seed \d+$/.test(l.name));
    assert.ok(applied, doc.layers.map((l) => l.name).join(", "));
    assert.deepEqual(applied.pixelAt(30, 30), layer().pixelAt(30, 30));

    const sessionId = live.session.id;
    await panel.liveButton.fire("click");
    assert.equal(layer(), undefined, "the live layer goes with the session");
    assert.ok(urls.includes(`DELETE ${server.baseUrl}/v1/live/${sessionId}`));
    await assert.rejects(new AieditClient({ baseUrl: server.baseUrl }).liveFrame(sessionId,
      { image: { width: 1, height: 1, bytes: new Uint8Array(4) } }),
    (err) => err.status === 404 || err.status === 409);
  });
