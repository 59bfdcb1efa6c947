"use strict";
/** Splits request bodies into {name: Uint8Array}: what a server receives. */

function indexOf(haystack, needle, from) {
  outer: for (let i = from; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) {
        continue outer;
      }
    }
    return i;
  }
  return -1;
}

function parseMultipart(body, contentType) {
  const boundary = /boundary=(.+)$/.exec(contentType)[1];
  const delimiter = new TextEncoder().encode(`--${boundary}`);
  const parts = {};
  let at = indexOf(body, delimiter, 0);
  while (at >= 0) {
    const start = at + delimiter.length + 2; // CRLF after the delimiter
    const next = indexOf(body, delimiter, start);
    if (next < 0) {
      break;
    }
    const part = body.subarray(start, next - 2); // CRLF before the next delimiter
    const headEnd = indexOf(part, new TextEncoder().encode("\r\n\r\n"), 0);
    const head = new TextDecoder().decode(part.subarray(0, headEnd));
    const name = /name="([^"]+)"/.exec(head)[1];
    parts[name] = part.subarray(headEnd + 4);
    at = next;
  }
  return parts;
}

const RAW_ORDER = ["image", "reference", "mask", ...Array.from({ length: 8 }, (_, i) => `control${i}`)];

/** Splits a POST /v1/jobs/raw body (files back to back, in the documented order) into parts. */
function parseRawBody(body, request) {
  const parts = {};
  let at = 0;
  for (const name of RAW_ORDER) {
    const d = request.raw && request.raw[name];
    if (!d) {
      continue;
    }
    const size = d.width * d.height * (name === "mask" ? 1 : d.format === "rgba16" ? 8 : 4);
    parts[name] = body.subarray(at, at + size);
    at += size;
  }
  return parts;
}

/**
 * A fetch that records every job or frame POST as the server receives it (`posts`: {url,
 * request, parts}), multipart or raw body, and passes the request on.
 */
function recordingFetch(posts) {
  return async (url, init = {}) => {
    if (init.method === "POST" && init.body instanceof Uint8Array) {
      const headers = init.headers || {};
      const type = headers["Content-Type"] || "";
      if (type.startsWith("multipart/form-data")) {
        const parts = parseMultipart(init.body, type);
        posts.push({ url: String(url), parts,
          request: parts.request ? JSON.parse(new TextDecoder().decode(parts.request)) : {} });
      } else if (headers["Aiedit-Request"]) {
        const request = JSON.parse(headers["Aiedit-Request"]);
        posts.push({ url: String(url), request, parts: parseRawBody(init.body, request) });
      }
    }
    return fetch(url, init);
  };
}

module.exports = { parseMultipart, recordingFetch };
