"use strict";
// The manifest and the .ccx package.

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { execFileSync } = require("node:child_process");
const { buildPackage, parseArgs } = require("../scripts/package");
const { readZip } = require("../scripts/zip");
const { createUxp } = require("./standin/uxp");
const { createPhotoshop } = require("./standin/photoshop");
const { installStandins } = require("./helpers/modules");

const ROOT = path.resolve(__dirname, "..");
const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, "manifest.json"), "utf8"));

test("the manifest is v5 for Photoshop 24.4+ with a panel and loopback network access", () => {
  assert.equal(manifest.manifestVersion, 5);
  assert.equal(manifest.host.app, "PS");
  assert.equal(manifest.host.minVersion, "24.4.0");
  const panels = manifest.entrypoints.filter((e) => e.type === "panel");
  assert.equal(panels.length, 1);
  assert.ok(manifest.requiredPermissions.network.domains.includes("http://127.0.0.1:8790"));
  assert.ok(fs.existsSync(path.join(ROOT, manifest.main)));
});

test("index.js registers the panel entrypoint the manifest declares", () => {
  const uxp = createUxp();
  installStandins({ photoshop: createPhotoshop(), uxp });
  delete require.cache[require.resolve("../index.js")];
  require("../index.js");
  const ids = manifest.entrypoints.map((e) => e.id);
  assert.deepEqual(Object.keys(uxp.standin.panels), ids);
});

test("the package is a zip with the manifest at its root and the remote server allowed", () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "aiedit-ccx-"));
  try {
    const options = parseArgs(["--remote", "https://ai.studio.example:8443/x", "--out", out],
      { AIEDIT_REMOTE_URL: "http://10.1.2.3:8790" });
    const { file } = buildPackage(options);
    assert.ok(file.endsWith(".ccx"));
    const files = readZip(fs.readFileSync(file));
    const packed = JSON.parse(files.get("manifest.json").toString());
    assert.deepEqual(packed.requiredPermissions.network.domains.slice(-2),
      ["https://ai.studio.example:8443", "http://10.1.2.3:8790"]);
    for (const name of ["index.html", "index.js", "src/panel.js", "src/host.js", "src/client.js"]) {
      assert.ok(files.has(name), `${name} is packaged`);
    }
    assert.ok(![...files.keys()].some((n) => n.startsWith("test/") || n.includes("node_modules")));
    const listed = execFileSync("python3", ["-c",
      "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); " +
      "assert z.testzip() is None; print('\\n'.join(z.namelist()))", file]).toString();
    assert.ok(listed.split("\n").includes("manifest.json"), "another zip reader agrees");
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test("a remote that is not an http(s) URL is refused", () => {
  assert.throws(() => buildPackage({ remotes: ["ftp://x"], out: os.tmpdir() }), /http or https/);
});
