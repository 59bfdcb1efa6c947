"use strict";
// Form fields from the server's parameter schemas, and typed params back from the form.

const test = require("node:test");
const assert = require("node:assert/strict");
const { fieldsFromSchema, paramsFromValues } = require("../src/params");
const { progressText } = require("../src/panel");
const { describe: jobName } = require("../src/job");

const schema = {
  type: "object",
  required: ["prompt"],
  properties: {
    prompt: { type: "string" },
    mode: { enum: ["semantic", "appearance", "text"], default: "semantic" },
    steps: { type: "integer", minimum: 1, maximum: 150, nullable: true, default: null },
    guidance: { type: ["number", "null"], minimum: 0, maximum: 30 },
    seed: { anyOf: [{ type: "integer" }, { type: "null" }] },
    tiled: { type: "boolean", default: false },
  },
};

test("fields follow the schema, without the prompt", () => {
  const fields = fieldsFromSchema(schema);
  assert.deepEqual(fields.map((f) => [f.name, f.type]), [
    ["mode", "enum"], ["steps", "integer"], ["guidance", "number"], ["seed", "integer"],
    ["tiled", "boolean"],
  ]);
  assert.deepEqual(fields[0].choices, ["semantic", "appearance", "text"]);
});

test("values become typed params; empty ones are left to the server", () => {
  const { params, errors } = paramsFromValues(schema,
    { mode: "text", steps: "20", guidance: "", seed: "42", tiled: true }, "  a red door ");
  assert.deepEqual(errors, []);
  assert.deepEqual(params, { prompt: "a red door", mode: "text", steps: 20, seed: 42, tiled: true });
});

test("bad values and a missing prompt are named", () => {
  const { errors } = paramsFromValues(schema, { steps: "2.5", guidance: "99", mode: "x" }, "");
  assert.deepEqual(errors, [
    "prompt: describe what you want", "mode: choose one of semantic, appearance, text",
    "steps: enter a whole number", "guidance: at most 30",
  ]);
});

test("progress text shows queue position, steps and time left", () => {
  assert.equal(progressText({ phase: "queued", job: { queue_position: 2 } }),
    "Queued: 2 job(s) ahead");
  assert.equal(progressText({ phase: "running", job: {
    progress: { step: 3, total: 20, fraction: 0.15, stage: "denoising", eta_s: 4.2 },
  } }), "denoising step 3/20 (15%), about 5 s left");
});

test("layer names carry the operation and a shortened prompt", () => {
  assert.equal(jobName("upscale", { scale: 2 }), "upscale");
  assert.equal(jobName("generate", { prompt: "x".repeat(60) }), `generate: ${"x".repeat(39)}…`);
});
