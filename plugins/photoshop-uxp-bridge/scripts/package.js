#!/usr/bin/env node
"use strict";
/**
 * Builds dist/aiedit-photoshop-<version>.ccx: a ZIP of the plugin with manifest.json at the
 * root, installable by double-click (Creative Cloud) or UXP Developer Tool.
 *
 *   npm run package                                   local server only
 *   npm run package -- --remote https://ai.studio.example   also allow that server
 *   AIEDIT_REMOTE_URL=https://a.example,https://b.example npm run package
 *   npm run package -- --out /tmp/build               write elsewhere
 *
 * UXP refuses network requests to hosts the manifest does not list, so a remote server must
 * be named at build time.
 */

const fs = require("node:fs");
const path = require("node:path");
const { createZip } = require("./zip");

const ROOT = path.resolve(__dirname, "..");
const SHIPPED = ["manifest.json", "index.html", "index.js", "src", "icons", "LICENSE"];

function parseArgs(argv, env) {
  const options = { remotes: [], out: path.join(ROOT, "dist") };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--remote") {
      options.remotes.push(argv[++i]);
    } else if (argv[i] === "--out") {
      options.out = path.resolve(argv[++i]);
    } else {
      throw new Error(`unknown argument ${argv[i]} (use --remote URL or --out DIR)`);
    }
  }
  if (env.AIEDIT_REMOTE_URL) {
    options.remotes.push(...env.AIEDIT_REMOTE_URL.split(",").map((s) => s.trim()).filter(Boolean));
  }
  return options;
}

/** The origin ("scheme://host[:port]") a manifest domain entry needs for a server URL. */
function originOf(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`--remote ${url}: not a URL (example: https://ai.studio.example)`);
  }
  if (!["http:", "https:"].includes(parsed.protocol)) {
    throw new Error(`--remote ${url}: use an http or https URL`);
  }
  return parsed.origin;
}

function manifestWithRemotes(manifest, remotes) {
  const copy = JSON.parse(JSON.stringify(manifest));
  const domains = copy.requiredPermissions.network.domains;
  for (const origin of remotes.map(originOf)) {
    if (!domains.includes(origin)) {
      domains.push(origin);
    }
  }
  return copy;
}

function listFiles(relative) {
  const full = path.join(ROOT, relative);
  if (!fs.existsSync(full)) {
    return [];
  }
  if (fs.statSync(full).isFile()) {
    return [relative];
  }
  return fs.readdirSync(full).sort()
    .flatMap((name) => listFiles(path.join(relative, name)));
}

/** Builds the package; returns {file, manifest, names}. */
function buildPackage({ remotes = [], out }) {
  const manifest = manifestWithRemotes(
    JSON.parse(fs.readFileSync(path.join(ROOT, "manifest.json"), "utf8")), remotes);
  const names = SHIPPED.flatMap(listFiles).map((n) => n.split(path.sep).join("/"));
  const files = names.map((name) => ({
    name,
    data: name === "manifest.json"
      ? Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`)
      : fs.readFileSync(path.join(ROOT, name)),
  }));
  fs.mkdirSync(out, { recursive: true });
  const file = path.join(out, `aiedit-photoshop-${manifest.version}.ccx`);
  fs.writeFileSync(file, createZip(files));
  return { file, manifest, names };
}

if (require.main === module) {
  try {
    const { file, manifest, names } = buildPackage(parseArgs(process.argv.slice(2), process.env));
    console.log(`wrote ${file} (${names.length} files)`);
    console.log(`network domains: ${manifest.requiredPermissions.network.domains.join(", ")}`);
  } catch (err) {
    console.error(`package: ${err.message}`);
    process.exit(1);
  }
}

module.exports = { buildPackage, parseArgs, originOf, manifestWithRemotes };
