"use strict";
/**
 * The panel's memory of its jobs, kept across panel reloads: one JSON list in localStorage (what
 * was asked, where, the job's state and its results, without pixels) and each job's selection
 * mask as a file in the plugin's data folder (uxp.storage.localFileSystem.getDataFolder()).
 * Result pixels are not kept: the server keeps them until the job expires and the panel
 * downloads them again when it needs them.
 */

const JOURNAL_KEY = "aiedit.journal";
const KEEP_ENTRIES = 30;

/** Masks as files in the plugin's data folder (UXP persistent file storage). */
class FolderBlobs {
  constructor(storage) {
    this.storage = storage;
    this.folder = null;
  }

  async dataFolder() {
    this.folder = this.folder || await this.storage.localFileSystem.getDataFolder();
    return this.folder;
  }

  async put(name, bytes) {
    const folder = await this.dataFolder();
    const file = await folder.createFile(name, { overwrite: true });
    const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    await file.write(copy, { format: this.storage.formats.binary });
  }

  async get(name) {
    const folder = await this.dataFolder();
    let file;
    try {
      file = await folder.getEntry(name);
    } catch {
      return null;
    }
    return new Uint8Array(await file.read({ format: this.storage.formats.binary }));
  }

  async remove(name) {
    const folder = await this.dataFolder();
    try {
      await (await folder.getEntry(name)).delete();
    } catch {
      // already gone
    }
  }
}

/** Masks in memory, where no file storage exists (nothing survives a reload). */
class MemoryBlobs {
  constructor() {
    this.items = new Map();
  }

  async put(name, bytes) {
    this.items.set(name, new Uint8Array(bytes));
  }

  async get(name) {
    return this.items.get(name) || null;
  }

  async remove(name) {
    this.items.delete(name);
  }
}

function maskName(id) {
  return `mask-${String(id).replace(/[^A-Za-z0-9_-]/g, "_")}.bin`;
}

function settled(entry) {
  return ["failed", "canceled"].includes(entry.state) || (entry.state === "succeeded" &&
    entry.results.every((r) => r.status !== "new"));
}

class Journal {
  /** `storage` is localStorage (getItem/setItem); `blobs` keeps masks (FolderBlobs in UXP). */
  constructor(storage, blobs = new MemoryBlobs()) {
    this.storage = storage;
    this.blobs = blobs;
    this.entries = this.load();
  }

  load() {
    try {
      const entries = JSON.parse(this.storage.getItem(JOURNAL_KEY) || "[]");
      return Array.isArray(entries) ? entries : [];
    } catch {
      return [];
    }
  }

  save() {
    this.storage.setItem(JOURNAL_KEY, JSON.stringify(this.entries));
  }

  get(id) {
    return this.entries.find((e) => e.id === id) || null;
  }

  /** Adds a new entry first; the oldest settled ones beyond KEEP_ENTRIES are forgotten. */
  async add(entry, mask = null) {
    if (mask) {
      await this.blobs.put(maskName(entry.id), mask);
    }
    this.entries.unshift({ ...entry, hasMask: Boolean(mask) });
    while (this.entries.length > KEEP_ENTRIES) {
      const old = [...this.entries].reverse().find(settled);
      if (!old) {
        break;
      }
      await this.forget(old.id);
    }
    this.save();
  }

  update(id, changes) {
    const entry = this.get(id);
    if (entry) {
      Object.assign(entry, changes);
      this.save();
    }
    return entry;
  }

  async mask(entry) {
    return entry.hasMask ? this.blobs.get(maskName(entry.id)) : null;
  }

  async forget(id) {
    this.entries = this.entries.filter((e) => e.id !== id);
    await this.blobs.remove(maskName(id));
    this.save();
  }

  /** Entries whose job may still change: followed again after a reload. */
  inFlight() {
    return this.entries.filter((e) => ["queued", "running"].includes(e.state));
  }

  /**
   * The plugin moved the content of document `docId` by (dx, dy) and its canvas is now
   * `canvas` (outpaint grew it): pending entries of that document move with it, so their
   * results still land on the pixels they were made for.
   */
  shiftDocument(docId, dx, dy, canvas, except = null) {
    for (const entry of this.entries) {
      if (entry.docId !== docId || entry.id === except || settled(entry)) {
        continue;
      }
      const b = entry.region.bounds;
      entry.region.bounds = { left: b.left + dx, top: b.top + dy, right: b.right + dx,
        bottom: b.bottom + dy };
      entry.shift = { x: (entry.shift ? entry.shift.x : 0) + dx,
        y: (entry.shift ? entry.shift.y : 0) + dy };
      entry.canvas = { ...canvas };
      for (const r of entry.results) {
        r.offset = { x: r.offset.x + dx, y: r.offset.y + dy };
      }
    }
    this.save();
  }
}

module.exports = { Journal, FolderBlobs, MemoryBlobs, JOURNAL_KEY, settled };
