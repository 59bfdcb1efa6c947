"use strict";
/**
 * Starts a real `aiedit serve` on 127.0.0.1 for flow tests: a free port, a temporary data dir.
 * The binary is $AIEDIT_BIN, or the repository's .venv/bin/aiedit.
 */

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const DEFAULT_BIN = path.resolve(__dirname, "../../../../.venv/bin/aiedit");
const START_TIMEOUT_MS = 60000;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitForHealth(baseUrl, child, output) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`aiedit serve exited with ${child.exitCode}:\n${output.join("")}`);
    }
    try {
      const response = await fetch(`${baseUrl}/v1/health`);
      if (response.ok) {
        return;
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`aiedit serve did not answer within ${START_TIMEOUT_MS} ms:\n${output.join("")}`);
}

/** Starts the server (with `env` added to this process's environment); resolves to
 * {baseUrl, dataDir, stop()}. */
async function startServer({ env = {} } = {}) {
  const bin = process.env.AIEDIT_BIN || DEFAULT_BIN;
  if (!fs.existsSync(bin)) {
    throw new Error(`aiedit is not installed at ${bin}: run \`make venv\` in the repository ` +
      "or set AIEDIT_BIN to the aiedit executable");
  }
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "aiedit-ps-"));
  const output = [];
  const child = spawn(bin, ["serve", "--host", "127.0.0.1", "--port", String(port),
    "--data-dir", dataDir], {
    stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env },
  });
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  child.stdout.on("data", (d) => output.push(d.toString()));
  child.stderr.on("data", (d) => output.push(d.toString()));
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(baseUrl, child, output);
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
      await exited;
      clearTimeout(timer);
    }
    process.removeListener("exit", killOnExit);
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  return { baseUrl, dataDir, stop, output };
}

module.exports = { startServer };
