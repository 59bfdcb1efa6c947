"use strict";
/**
 * HTTP client for the aiedit server (docs/http-api.md). Uses only `fetch`, which UXP and
 * Node both provide; multipart bodies are built by hand because UXP's FormData support
 * varies between versions.
 */

const TERMINAL_STATES = new Set(["succeeded", "failed", "canceled"]);

class AieditError extends Error {
  /** An error answer from the server ({code, status, message}) or a network failure. */
  constructor(message, { code = "error", status = 0, errors = null } = {}) {
    super(message);
    this.name = "AieditError";
    this.code = code;
    this.status = status;
    this.errors = errors;
  }
}

function randomKey() {
  const bytes = new Uint8Array(16);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = Math.floor(Math.random() * 256);
  }
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function encodeText(text) {
  return new TextEncoder().encode(text);
}

// the order of the raw files in a POST /v1/jobs/raw body
const RAW_BODY_ORDER = ["image", "reference", "mask",
  ...Array.from({ length: 8 }, (_, i) => `control${i}`)];

/** JSON in ASCII (\uXXXX escapes), as an HTTP header value must be. */
function asciiJson(value) {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * Builds a multipart/form-data body. `parts` is a list of {name, value} (string) or
 * {name, filename, contentType, bytes} (Uint8Array).
 */
function multipartBody(parts) {
  const boundary = `----aiedit${randomKey()}`;
  const chunks = [];
  for (const part of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"`;
    if (part.bytes) {
      head += `; filename="${part.filename}"\r\nContent-Type: ${part.contentType}\r\n\r\n`;
      chunks.push(encodeText(head), part.bytes, encodeText("\r\n"));
    } else {
      head += "\r\nContent-Type: application/json; charset=utf-8\r\n\r\n";
      chunks.push(encodeText(head + part.value + "\r\n"));
    }
  }
  chunks.push(encodeText(`--${boundary}--\r\n`));
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const body = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.length;
  }
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

async function errorFromResponse(response) {
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (payload && payload.message) {
    return new AieditError(payload.message, {
      code: payload.code, status: response.status, errors: payload.errors || null,
    });
  }
  return new AieditError(`server answered ${response.status} ${response.statusText || ""}`.trim(),
    { status: response.status });
}

class AieditClient {
  /**
   * @param {{baseUrl: string, apiKey?: string, fetch?: Function}} options
   */
  constructor({ baseUrl, apiKey = "", fetch: fetchImpl = globalThis.fetch }) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.fetch = fetchImpl;
  }

  headers(extra = {}) {
    const headers = { ...extra };
    if (this.apiKey) {
      headers.Authorization = `Bearer ${this.apiKey}`;
    }
    return headers;
  }

  url(path) {
    return path.startsWith("http") ? path : `${this.baseUrl}${path}`;
  }

  async request(method, path, { body, headers } = {}) {
    let response;
    try {
      response = await this.fetch(this.url(path), { method, body, headers: this.headers(headers) });
    } catch (err) {
      throw new AieditError(`cannot reach the server at ${this.baseUrl}: ${err.message}`,
        { code: "unreachable" });
    }
    if (!response.ok) {
      throw await errorFromResponse(response);
    }
    return response;
  }

  async json(method, path, options) {
    const response = await this.request(method, path, options);
    return response.status === 204 ? null : response.json();
  }

  /** GET /v1/health. */
  health() {
    return this.json("GET", "/v1/health");
  }

  /** GET /v1/operations: a list of operations with params_schema, models and limits. */
  async operations() {
    const payload = await this.json("GET", "/v1/operations");
    return Array.isArray(payload) ? payload : payload.operations;
  }

  /** GET /v1/styles: style presets ([] from a server without styles). */
  async styles() {
    try {
      const payload = await this.json("GET", "/v1/styles");
      return Array.isArray(payload) ? payload : payload.styles || [];
    } catch (err) {
      if (err.status === 404) {
        return [];
      }
      throw err;
    }
  }

  /** GET /v1/models: the catalog (LoRAs are the entries with engine "lora"). */
  async models() {
    const payload = await this.json("GET", "/v1/models");
    return Array.isArray(payload) ? payload : payload.models || [];
  }

  /** The schemas that /v1/operations' params schemas refer to (OpenAPI components), or {}. */
  async schemaComponents() {
    try {
      const doc = await this.json("GET", "/openapi.json");
      return (doc && doc.components && doc.components.schemas) || {};
    } catch {
      return {};
    }
  }

  /** The server's account page `path` (e.g. "/account/keys"), opened in a browser. */
  pageUrl(path) {
    return `${this.baseUrl}${path}`;
  }

  /**
   * POST /v1/jobs. `files` maps image/mask/reference to {bytes, width, height} raw pixels
   * (RGBA for images, one byte per pixel for masks); they are declared in `request.raw` and
   * sent as the body of POST /v1/jobs/raw, back to back (the request JSON in the
   * Aiedit-Request header), which the server stores without multipart parsing.
   */
  async submit(request, files = {}) {
    const raw = {};
    const chunks = [];
    for (const name of RAW_BODY_ORDER) {
      const file = files[name];
      if (!file) {
        continue;
      }
      raw[name] = { width: file.width, height: file.height };
      if (file.format) {
        raw[name].format = file.format;
      }
      chunks.push(file.bytes);
    }
    if (!chunks.length) {
      const { body, contentType } = multipartBody([
        { name: "request", value: JSON.stringify(request) }]);
      return this.json("POST", "/v1/jobs", {
        body,
        headers: { "Content-Type": contentType, "Idempotency-Key": randomKey() },
      });
    }
    const body = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      body.set(c, at);
      at += c.length;
    }
    return this.json("POST", "/v1/jobs/raw", {
      body,
      headers: {
        "Content-Type": "application/octet-stream",
        "Aiedit-Request": asciiJson({ ...request, raw }),
        "Idempotency-Key": randomKey(),
      },
    });
  }

  /** GET /v1/jobs/{id}?wait=S: returns when the job changes or after `waitSeconds`. */
  job(id, waitSeconds = 0) {
    const query = waitSeconds > 0 ? `?wait=${waitSeconds}` : "";
    return this.json("GET", `/v1/jobs/${encodeURIComponent(id)}${query}`);
  }

  /** Cancels a queued or running job; a job that finished meanwhile is kept, not deleted. */
  cancel(id) {
    return this.json("DELETE", `/v1/jobs/${encodeURIComponent(id)}?cancel_only=true`);
  }

  /**
   * Follows GET /v1/jobs/{id}/events (Server-Sent Events) and calls `onEvent(name, data)` for
   * each `progress`, `preview` and `state` event. Resolves to the final job (the `state`
   * event's data) or null when the stream ended without one (the server's stream time limit).
   * Throws AieditError with code `events_unsupported` when this HTTP stack cannot read a body
   * as it arrives (then long-polls are the way). `handle.cancel()` ends the stream early; set
   * `handle.canceled` first, so a stream still being opened is closed as soon as it opens.
   */
  async events(id, onEvent, handle = {}) {
    const response = await this.request("GET", `/v1/jobs/${encodeURIComponent(id)}/events`,
      { headers: { Accept: "text/event-stream" } });
    const reader = response.body && typeof response.body.getReader === "function"
      ? response.body.getReader() : null;
    if (!reader) {
      throw new AieditError("this HTTP stack cannot stream responses", {
        code: "events_unsupported",
      });
    }
    handle.cancel = () => reader.cancel().catch(() => {});
    if (handle.canceled) {
      handle.cancel(); // canceled while the request was on its way
      return null;
    }
    const decoder = new TextDecoder();
    let buffer = "";
    let final = null;
    while (!handle.canceled) {
      const { value, done } = await reader.read();
      if (done) {
        break;
      }
      buffer += decoder.decode(value, { stream: true });
      const parsed = parseEvents(buffer);
      buffer = parsed.rest;
      for (const { event, data } of parsed.events) {
        const payload = JSON.parse(data);
        if (event === "state") {
          final = payload;
        }
        await onEvent(event, payload);
      }
    }
    return final;
  }

  /**
   * GET /v1/jobs/{id}/preview: the latest step preview as a PNG data URL and its step, or null
   * while there is none (404).
   */
  async preview(id) {
    let response;
    try {
      response = await this.request("GET", `/v1/jobs/${encodeURIComponent(id)}/preview`);
    } catch (err) {
      if (err.status === 404) {
        return null;
      }
      throw err;
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    return {
      step: Number(response.headers.get("X-Preview-Step")),
      url: `data:image/png;base64,${base64(bytes)}`,
    };
  }

  /** POST /v1/live: opens a live session ({operation, model, params}) → {id, params, ...}. */
  liveOpen(body) {
    return this.json("POST", "/v1/live", {
      body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
    });
  }

  /**
   * POST /v1/live/{id}/frames?format=rgba: one frame, raw `files` ({image, mask?} as for
   * submit) and `request` ({params?, region?}); resolves to {width, height, offset, seed,
   * data} or throws (409 `superseded` when a newer frame replaced this one).
   */
  async liveFrame(id, files, request = {}) {
    const raw = {};
    const parts = [];
    for (const [name, file] of Object.entries(files)) {
      raw[name] = { width: file.width, height: file.height };
      parts.push({
        name, filename: `${name}.raw`, contentType: "application/octet-stream", bytes: file.bytes,
      });
    }
    parts.unshift({ name: "request", value: JSON.stringify({ ...request, raw }) });
    const { body, contentType } = multipartBody(parts);
    const response = await this.request("POST",
      `/v1/live/${encodeURIComponent(id)}/frames?format=rgba`,
      { body, headers: { "Content-Type": contentType } });
    const header = (name) => Number(response.headers.get(name));
    return {
      width: header("X-Image-Width"), height: header("X-Image-Height"), seed: header("X-Seed"),
      offset: { x: header("X-Offset-X"), y: header("X-Offset-Y") }, depth: 8,
      data: new Uint8Array(await response.arrayBuffer()),
    };
  }

  /** DELETE /v1/live/{id}: ends the session. */
  liveClose(id) {
    return this.json("DELETE", `/v1/live/${encodeURIComponent(id)}`);
  }

  /** Deletes a finished job and its files on the server (DELETE /v1/jobs/{id}). */
  remove(id) {
    return this.json("DELETE", `/v1/jobs/${encodeURIComponent(id)}`);
  }

  /**
   * Downloads a result as raw RGBA: {width, height, offset: {x, y}, depth, data}; `data` is a
   * Uint8Array, or for a 16-bit result (`depth: 16`) a Uint16Array 0..65535 (`?format=rgba16`).
   */
  async resultRgba(result) {
    const deep = result.depth === 16;
    const sep = result.url.includes("?") ? "&" : "?";
    const response = await this.request("GET",
      `${result.url}${sep}format=${deep ? "rgba16" : "rgba"}`);
    const header = (name) => Number(response.headers.get(name));
    const width = header("X-Image-Width");
    const height = header("X-Image-Height");
    const bytes = new Uint8Array(await response.arrayBuffer());
    const expected = width * height * (deep ? 8 : 4);
    if (bytes.length !== expected) {
      throw new AieditError(
        `result ${result.index}: expected ${expected} bytes of RGBA, got ${bytes.length}`,
        { code: "bad_result" });
    }
    const data = deep ? new Uint16Array(bytes.buffer.slice(bytes.byteOffset,
      bytes.byteOffset + bytes.byteLength)) : bytes;
    return {
      index: result.index, kind: result.kind, seed: result.seed ?? null, width, height,
      depth: deep ? 16 : 8, offset: { x: header("X-Offset-X"), y: header("X-Offset-Y") }, data,
    };
  }
}

/** Base64 of bytes (UXP may lack btoa). */
function base64(bytes) {
  const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] || 0) << 8) | (bytes[i + 2] || 0);
    out += chars[(n >> 18) & 63] + chars[(n >> 12) & 63] +
      (i + 1 < bytes.length ? chars[(n >> 6) & 63] : "=") +
      (i + 2 < bytes.length ? chars[n & 63] : "=");
  }
  return out;
}

/** Splits Server-Sent Events text into [{event, data}] plus the unfinished rest. */
function parseEvents(buffer) {
  const events = [];
  const blocks = buffer.replace(/\r\n/g, "\n").split("\n\n");
  const rest = blocks.pop();
  for (const block of blocks) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) {
        continue; // heartbeat
      }
      if (line.startsWith("event:")) {
        event = line.slice(6).trim();
      } else if (line.startsWith("data:")) {
        data.push(line.slice(5).replace(/^ /, ""));
      }
    }
    if (data.length) {
      events.push({ event, data: data.join("\n") });
    }
  }
  return { events, rest };
}

function isTerminal(job) {
  return TERMINAL_STATES.has(job.state);
}

module.exports = { AieditClient, AieditError, isTerminal, multipartBody, parseEvents, base64 };
