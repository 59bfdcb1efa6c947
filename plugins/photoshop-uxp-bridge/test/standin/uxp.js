"use strict";
/**
 * A stand-in for the `uxp` module: `entrypoints.setup` (UXP: may be called once per plugin;
 * panels are keyed by the entrypoint ids in manifest.json), `storage.localFileSystem` with the
 * plugin's data folder (real files in a folder the test chooses, so a "reloaded" panel finds
 * what the previous one wrote), `storage.formats`, and `shell.openExternal`.
 *
 * Documented in uxp-api/reference-js/Modules/uxp/Persistent File Storage: getDataFolder() →
 * Folder; Folder.createFile(name, {overwrite}) → File; Folder.getEntry(path) → File (rejects
 * when missing); File.write(data, {format}); File.read({format}) (utf8 text by default,
 * ArrayBuffer with formats.binary); Entry.delete().
 */

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const formats = { utf8: Symbol("utf8"), binary: Symbol("binary") };

class Entry {
  constructor(nativePath) {
    this.nativePath = nativePath;
    this.name = path.basename(nativePath);
  }

  async delete() {
    fs.rmSync(this.nativePath, { recursive: true });
  }
}

class File extends Entry {
  get isFile() {
    return true;
  }

  async write(data, { format = formats.utf8 } = {}) {
    if (format === formats.binary) {
      if (!(data instanceof ArrayBuffer)) {
        throw new TypeError("File.write with formats.binary takes an ArrayBuffer");
      }
      fs.writeFileSync(this.nativePath, Buffer.from(data));
    } else {
      fs.writeFileSync(this.nativePath, String(data), "utf8");
    }
  }

  async read({ format = formats.utf8 } = {}) {
    const bytes = fs.readFileSync(this.nativePath);
    if (format === formats.binary) {
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    }
    return bytes.toString("utf8");
  }
}

class Folder extends Entry {
  get isFolder() {
    return true;
  }

  async createFile(name, { overwrite = false } = {}) {
    const target = path.join(this.nativePath, name);
    if (fs.existsSync(target) && !overwrite) {
      throw new Error(`createFile: ${name} exists (pass overwrite: true)`);
    }
    fs.writeFileSync(target, "");
    return new File(target);
  }

  async getEntry(name) {
    const target = path.join(this.nativePath, name);
    if (!fs.existsSync(target)) {
      throw new Error(`getEntry: no entry named ${name}`);
    }
    return fs.statSync(target).isDirectory() ? new Folder(target) : new File(target);
  }

  async getEntries() {
    return fs.readdirSync(this.nativePath).map((n) => new File(path.join(this.nativePath, n)));
  }
}

/**
 * `dataFolder` is where the plugin's data folder lives (a new temporary folder by default);
 * pass the same folder to a second stand-in to model a reloaded panel.
 */
function createUxp({ dataFolder = fs.mkdtempSync(path.join(os.tmpdir(), "uxp-data-")) } = {}) {
  const state = { setupCalls: 0, panels: null, opened: [], dataFolder };
  return {
    entrypoints: {
      setup(definition) {
        state.setupCalls += 1;
        if (state.setupCalls > 1) {
          throw new Error("entrypoints.setup can be called only once");
        }
        state.panels = definition.panels || {};
      },
    },
    storage: {
      formats,
      localFileSystem: {
        getDataFolder: async () => new Folder(dataFolder),
      },
    },
    shell: {
      /** shell.openExternal(url): opens the URL in the default browser. */
      openExternal: async (url) => {
        state.opened.push(url);
        return "";
      },
    },
    host: { name: "Photoshop", version: "25.0.0" },
    standin: state,
  };
}

module.exports = { createUxp };
