"use strict";
/**
 * The environment for an `aiedit serve` whose catalog has the tiny random diffusion pipelines
 * (models `tiny-*`) the Python tests build: `python -m tests.fixtures.tiny_server --print-env`
 * builds the model cache once (kept under ~/.cache/aiedit) and prints KEY=VALUE lines.
 * Python is the one next to $AIEDIT_BIN, or the repository's .venv.
 */

const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const REPO = path.resolve(__dirname, "../../../..");
const BUILD_TIMEOUT_MS = 15 * 60 * 1000;

function tinyModelsEnv() {
  const bin = process.env.AIEDIT_BIN || path.join(REPO, ".venv", "bin", "aiedit");
  const python = path.join(path.dirname(bin), "python");
  if (!fs.existsSync(python)) {
    throw new Error(`no Python at ${python}: run \`make venv\` in the repository or set ` +
      "AIEDIT_BIN to the aiedit executable of a virtualenv");
  }
  const out = execFileSync(python, ["-m", "tests.fixtures.tiny_server", "--print-env"], {
    cwd: REPO, encoding: "utf8", timeout: BUILD_TIMEOUT_MS, stdio: ["ignore", "pipe", "pipe"],
  });
  const env = {};
  for (const line of out.split("\n")) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match) {
      env[match[1]] = match[2];
    }
  }
  if (!env.HF_HUB_CACHE || !env.AIEDIT_CATALOG_FILE) {
    throw new Error(`tests.fixtures.tiny_server printed no environment:\n${out}`);
  }
  return env;
}

module.exports = { tinyModelsEnv };
