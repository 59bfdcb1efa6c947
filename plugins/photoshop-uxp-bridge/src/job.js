"use strict";
/**
 * One job from the panel's point of view: read the region, submit, follow progress, fetch the
 * results, then apply or discard them. Network waits never happen inside a modal scope.
 */

const geo = require("./geometry");
const { AieditError, isTerminal } = require("./client");

const MASKED_OPERATIONS = new Set(["inpaint", "edit"]);
const NAME_PROMPT_CHARS = 40;

function describe(operationId, params) {
  const prompt = typeof params.prompt === "string" ? params.prompt.trim() : "";
  if (!prompt) {
    return operationId;
  }
  const short = prompt.length > NAME_PROMPT_CHARS
    ? `${prompt.slice(0, NAME_PROMPT_CHARS - 1)}…` : prompt;
  return `${operationId}: ${short}`;
}

function resultRect(r) {
  return geo.rect(r.offset.x, r.offset.y, r.offset.x + r.width, r.offset.y + r.height);
}

/**
 * Where results go. Inside the canvas: new layers in the document. Outpaint: the canvas grows
 * to hold them. Otherwise (upscale) a new document that holds every result, its offsets
 * shifted to be non-negative.
 */
function placement(doc, region, results, operationId) {
  const canvas = geo.rect(0, 0, doc.width, doc.height);
  const rects = results.map(resultRect);
  const all = rects.reduce(geo.union);
  const fits = all.left >= 0 && all.top >= 0 && all.right <= doc.width && all.bottom <= doc.height;
  if (fits) {
    return { newDocument: null, growCanvas: null, shift: { x: 0, y: 0 } };
  }
  if (operationId === "outpaint") {
    const grown = geo.union(all, canvas);
    return {
      newDocument: null,
      growCanvas: {
        left: -grown.left, top: -grown.top,
        right: grown.right - doc.width, bottom: grown.bottom - doc.height,
      },
      shift: { x: -grown.left, y: -grown.top },
    };
  }
  const scale = results[0].width / geo.width(region);
  let bounds = rects.reduce(geo.union);
  if (scale > 1) {
    bounds = geo.union(bounds, geo.rect(0, 0, Math.round(doc.width * scale),
      Math.round(doc.height * scale)));
  }
  return {
    newDocument: {
      width: geo.width(bounds), height: geo.height(bounds), scale: Math.max(scale, 1),
    },
    growCanvas: null,
    shift: { x: -bounds.left, y: -bounds.top },
  };
}

/**
 * 16 when the document has 16 bits per channel and the operation takes `rgba16`
 * (GET /v1/operations `input_formats`), else 8. Raw rgba16 is little-endian, as are the
 * machines Photoshop runs on, so a Uint16Array's bytes go as they are.
 */
function uploadDepth(host, doc, operation) {
  const formats = operation.input_formats || ["rgba8"];
  return host.depth(doc) === 16 && formats.includes("rgba16") ? 16 : 8;
}

class JobSession {
  /**
   * @param {{client: AieditClient, host: PhotoshopHost, onUpdate?: Function, pollWait?: number}}
   * `onUpdate` receives {phase, job?, message?} as the job moves on.
   */
  constructor({ client, host, onUpdate = () => {}, pollWait = 10, events = true }) {
    this.client = client;
    this.host = host;
    this.onUpdate = onUpdate;
    this.pollWait = pollWait;
    this.useEvents = events;
    this.lastPreview = { step: 0, at: 0 };
    this.jobId = null;
    this.cancelRequested = false;
  }

  /**
   * Runs `operation` (an entry of GET /v1/operations) with `params`.
   * `source` is "layer" (the active layer) or "composite"; `margin` grows the selection.
   * Resolves to {state, job, results, region, doc, name}; results are downloaded RGBA.
   */
  async run(settings) {
    const started = await this.start(settings);
    const job = await this.follow(started.job);
    return this.finish(started, job);
  }

  /**
   * Reads the region and submits the job. Resolves to {doc, region, job, name, operationId,
   * request}: what the panel's journal keeps while the job runs.
   */
  async start({ operation, model = null, params = {}, source = "composite", margin = 0,
    extra = {}, files: extraFiles = null }) {
    const doc = this.host.activeDocument();
    this.host.checkDocument(doc);
    const region = await this.readInputs(doc, operation, source, margin);
    const moreFiles = extraFiles ? await extraFiles(doc, region) : {};
    this.onUpdate({ phase: "submitting" });
    const request = { ...this.requestFor(operation, model, params, region), ...extra };
    let job = await this.client.submit(request, { ...this.filesFor(operation, region),
      ...moreFiles });
    this.jobId = job.id;
    if (this.cancelRequested) {
      job = (await this.client.cancel(job.id)) || job;
    }
    this.onUpdate({ phase: "waiting", job });
    return {
      doc, region, job, request, name: describe(operation.id, params), operationId: operation.id,
    };
  }

  /** A finished job's outcome: its results downloaded, or the server's error thrown. */
  async finish({ doc, region, name, operationId }, job) {
    if (job.state === "failed") {
      const error = job.error || {};
      throw new AieditError(error.message || "the job failed", { code: error.code || "failed" });
    }
    if (job.state !== "succeeded") {
      return { state: job.state, job, results: [], region, doc, name, operationId };
    }
    this.onUpdate({ phase: "downloading", job });
    const results = [];
    for (const result of job.results.filter((r) => r.kind === "image")) {
      results.push(await this.client.resultRgba(result));
    }
    return { state: "succeeded", job, results, region, doc, name, operationId };
  }

  async readInputs(doc, operation, source, margin) {
    const inputs = operation.inputs || {};
    const plan = await this.host.planRegion(doc, {
      regionKind: operation.region, source, margin,
    });
    if (inputs.mask === "required" && !plan.selection) {
      throw new AieditError(`${operation.title || operation.id} needs a selection: select the ` +
        "area to change first.", { code: "no_selection" });
    }
    this.onUpdate({ phase: "reading" });
    const region = await this.host.readRegion(doc, {
      ...plan, source, wantMask: Boolean(inputs.mask) && inputs.mask !== "unused",
      depth: uploadDepth(this.host, doc, operation),
    });
    if (inputs.mask === "required" && !region.mask) {
      throw new AieditError("The selection is empty inside the region.", { code: "no_selection" });
    }
    return region;
  }

  requestFor(operation, model, params, region) {
    const request = {
      operation: operation.id,
      params,
      region: {
        x: region.bounds.left, y: region.bounds.top,
        width: geo.width(region.bounds), height: geo.height(region.bounds),
      },
    };
    if (model) {
      request.model = model;
    }
    return request;
  }

  filesFor(operation, region) {
    const inputs = operation.inputs || {};
    const size = { width: geo.width(region.bounds), height: geo.height(region.bounds) };
    const files = {};
    if (inputs.image && inputs.image !== "unused") {
      const deep = region.image instanceof Uint16Array;
      files.image = {
        ...size, format: deep ? "rgba16" : undefined,
        bytes: deep ? new Uint8Array(region.image.buffer, region.image.byteOffset,
          region.image.byteLength) : region.image,
      };
    }
    if (region.mask) {
      files.mask = { ...size, bytes: region.mask };
    }
    return files;
  }

  /**
   * Waits until the job finishes, reporting each change and the step previews
   * ({phase: "preview", preview: {step, url}}): through the job's event stream where the HTTP
   * stack can read one, else with long-polls (asking for the preview as steps advance). Stops
   * early, returning the job as last seen, once `stop()` was called (the panel is going away).
   */
  async follow(job) {
    if (this.useEvents && !isTerminal(job)) {
      job = (await this.followEvents(job)) || job;
    }
    while (!isTerminal(job) && !this.stopped) {
      job = await this.client.job(job.id, this.pollWait);
      if (this.stopped) {
        break;
      }
      this.onUpdate({ phase: job.state === "queued" ? "queued" : "running", job });
      const p = job.progress || {};
      if (job.state === "running" && p.stage === "denoising" && p.step > this.lastPreview.step &&
          Date.now() - this.lastPreview.at > 1000) {
        await this.showPreview(job.id);
      }
    }
    if (!this.stopped) {
      this.onUpdate({ phase: job.state, job });
    }
    return job;
  }

  /**
   * Follows the job's Server-Sent Events; resolves to the finished job, or null to go on with
   * long-polls (no streaming here, too many streams, or stopped). A stream that ends without
   * a final state (the server's time limit) is opened again.
   */
  async followEvents(job) {
    let last = job;
    while (!this.stopped) {
      this.stream = {};
      let final;
      try {
        final = await this.client.events(job.id, async (name, data) => {
          if (this.stopped) {
            return;
          }
          if (name === "progress") {
            const { state, queue_position: queuePosition, ...progress } = data;
            last = { ...last, state, queue_position: queuePosition, progress };
            this.onUpdate({ phase: state === "queued" ? "queued" : "running", job: last });
          } else if (name === "preview") {
            await this.showPreview(job.id);
          }
        }, this.stream);
      } catch (err) {
        if (this.stopped || err.code === "events_unsupported" || err.status === 429) {
          this.useEvents = err.code !== "events_unsupported";
          return null;
        }
        throw err;
      }
      if (final && !this.stopped) {
        return final;
      }
    }
    return null;
  }

  async showPreview(jobId) {
    this.lastPreview.at = Date.now();
    const preview = await this.client.preview(jobId).catch(() => null);
    if (preview && preview.step > this.lastPreview.step && !this.stopped) {
      this.lastPreview.step = preview.step;
      this.onUpdate({ phase: "preview", preview });
    }
  }

  stop() {
    this.stopped = true;
    if (this.stream) {
      this.stream.canceled = true;
      if (this.stream.cancel) {
        this.stream.cancel();
      }
    }
  }

  /** Asks the server to cancel; the running `run` then resolves with state "canceled". */
  async cancel() {
    this.cancelRequested = true;
    if (this.jobId) {
      await this.client.cancel(this.jobId);
    }
  }
}

/**
 * Puts a finished job's results into Photoshop in one history step: masked by the selection
 * for inpaint and edit, in a group for several frames, in a new document if they do not fit.
 */
async function applyOutcome(host, outcome) {
  const { doc, region, results, name, operationId } = outcome;
  const where = placement(doc, region.bounds, results, operationId);
  const shifted = results.map((r) => ({
    ...r, offset: { x: r.offset.x + where.shift.x, y: r.offset.y + where.shift.y },
  }));
  const masked = MASKED_OPERATIONS.has(operationId) && region.mask && !where.newDocument;
  const shiftedBounds = geo.rect(region.bounds.left + where.shift.x,
    region.bounds.top + where.shift.y, region.bounds.right + where.shift.x,
    region.bounds.bottom + where.shift.y);
  const newDocument = where.newDocument ? { ...where.newDocument, name } : null;
  const applied = await host.applyResults(doc, shifted, {
    name,
    mask: masked ? { bounds: shiftedBounds, data: region.mask } : null,
    groupName: results.length > 1 && operationId === "video" ? name : null,
    newDocument,
    growCanvas: where.growCanvas,
  });
  return { ...applied, grown: where.growCanvas };
}

module.exports = { JobSession, applyOutcome, describe, placement, MASKED_OPERATIONS };
