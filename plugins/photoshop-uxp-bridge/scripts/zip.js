"use strict";
/** A small ZIP writer and reader (deflate via node:zlib), enough for a .ccx package. */

const zlib = require("node:zlib");

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) {
      c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    }
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc = CRC_TABLE[(crc ^ b) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

// 1980-01-01 00:00, the earliest DOS time: fixed so that builds are reproducible.
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

function localHeader(entry) {
  const h = Buffer.alloc(30);
  h.writeUInt32LE(0x04034b50, 0);
  h.writeUInt16LE(20, 4);
  h.writeUInt16LE(0x0800, 6); // UTF-8 names
  h.writeUInt16LE(8, 8); // deflate
  h.writeUInt16LE(DOS_TIME, 10);
  h.writeUInt16LE(DOS_DATE, 12);
  h.writeUInt32LE(entry.crc, 14);
  h.writeUInt32LE(entry.compressed.length, 18);
  h.writeUInt32LE(entry.size, 22);
  h.writeUInt16LE(entry.name.length, 26);
  h.writeUInt16LE(0, 28);
  return h;
}

function centralHeader(entry) {
  const h = Buffer.alloc(46);
  h.writeUInt32LE(0x02014b50, 0);
  h.writeUInt16LE(20, 4);
  h.writeUInt16LE(20, 6);
  h.writeUInt16LE(0x0800, 8);
  h.writeUInt16LE(8, 10);
  h.writeUInt16LE(DOS_TIME, 12);
  h.writeUInt16LE(DOS_DATE, 14);
  h.writeUInt32LE(entry.crc, 16);
  h.writeUInt32LE(entry.compressed.length, 20);
  h.writeUInt32LE(entry.size, 24);
  h.writeUInt16LE(entry.name.length, 28);
  h.writeUInt32LE(entry.offset, 42);
  return h;
}

/** Builds a ZIP archive from [{name, data}] (names use "/" separators). */
function createZip(files) {
  const chunks = [];
  const entries = [];
  let offset = 0;
  for (const file of files) {
    const data = Buffer.from(file.data);
    const entry = {
      name: Buffer.from(file.name, "utf8"), size: data.length, crc: crc32(data),
      compressed: zlib.deflateRawSync(data, { level: 9 }), offset,
    };
    const header = localHeader(entry);
    chunks.push(header, entry.name, entry.compressed);
    offset += header.length + entry.name.length + entry.compressed.length;
    entries.push(entry);
  }
  const centralStart = offset;
  for (const entry of entries) {
    const header = centralHeader(entry);
    chunks.push(header, entry.name);
    offset += header.length + entry.name.length;
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(offset - centralStart, 12);
  end.writeUInt32LE(centralStart, 16);
  chunks.push(end);
  return Buffer.concat(chunks);
}

/** Reads a ZIP archive written by createZip (or any deflate/store ZIP) into a name → Buffer map. */
function readZip(buffer) {
  const endAt = buffer.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (endAt < 0) {
    throw new Error("not a zip archive: no end of central directory");
  }
  const count = buffer.readUInt16LE(endAt + 10);
  let at = buffer.readUInt32LE(endAt + 16);
  const files = new Map();
  for (let i = 0; i < count; i++) {
    const method = buffer.readUInt16LE(at + 10);
    const crc = buffer.readUInt32LE(at + 16);
    const compressedSize = buffer.readUInt32LE(at + 20);
    const nameLength = buffer.readUInt16LE(at + 28);
    const extraLength = buffer.readUInt16LE(at + 30);
    const commentLength = buffer.readUInt16LE(at + 32);
    const localAt = buffer.readUInt32LE(at + 42);
    const name = buffer.toString("utf8", at + 46, at + 46 + nameLength);
    const localExtra = buffer.readUInt16LE(localAt + 26) + buffer.readUInt16LE(localAt + 28);
    const dataAt = localAt + 30 + localExtra;
    const raw = buffer.subarray(dataAt, dataAt + compressedSize);
    const data = method === 8 ? zlib.inflateRawSync(raw) : Buffer.from(raw);
    if (crc32(data) !== crc) {
      throw new Error(`zip entry ${name}: CRC mismatch`);
    }
    files.set(name, data);
    at += 46 + nameLength + extraLength + commentLength;
  }
  return files;
}

module.exports = { createZip, readZip, crc32 };
