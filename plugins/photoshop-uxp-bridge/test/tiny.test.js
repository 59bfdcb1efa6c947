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
