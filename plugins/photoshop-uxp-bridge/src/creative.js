"use strict";
/**
 * Creative control in the panel (docs/http-api.md, "Creative control"): control layers (a
 * layer of the document as a scribble / line art / Canny / depth / pose / reference map, with a
 * strength and "make the map from this picture"), a reference layer, a style from
 * GET /v1/styles and LoRAs with weights from GET /v1/models. Shown only where the operation
 * takes them (its `inputs` and params schema). Pixels of the chosen layers are read over the
 * same region as the image, so they line up with it on the server.
 */

const { el, setChildren } = require("./dom");

const DEFAULT_KINDS = ["scribble", "lineart", "canny", "depth", "pose", "reference"];

function options(document, items, selected = null) {
  return items.map(([value, text]) => {
    const option = el(document, "option", { value, text });
    if (String(value) === String(selected)) {
      option.setAttribute("selected", "");
    }
    return option;
  });
}

/** The `kind` values a control item takes, from the resolved schema or the documented list. */
function controlKinds(schema, components = {}) {
  const items = schema && schema.properties && schema.properties.control &&
    schema.properties.control.items;
  if (!items) {
    return [];
  }
  let item = items;
  if (item.$ref) {
    item = components[item.$ref.split("/").pop()] || {};
  }
  const kind = item.properties && item.properties.kind;
  return (kind && kind.enum) || DEFAULT_KINDS;
}

class CreativeControls {
  constructor({ document, host }) {
    this.document = document;
    this.host = host;
    this.box = el(document, "div", { class: "creative" });
    this.controlRows = [];
    this.loraRows = [];
    this.layers = [];
    this.kinds = [];
    this.loras = [];
    this.styles = [];
    this.reference = null;
    this.style = null;
  }

  /**
   * Builds the widgets for operation `op`. `catalog` is {styles, models, components}: styles
   * from GET /v1/styles, models from GET /v1/models (LoRAs are engine "lora"), components the
   * OpenAPI schemas that params_schema refers to.
   */
  configure(op, { styles = [], models = [], components = {} } = {}, modelId = null) {
    const d = this.document;
    const schema = op.params_schema || {};
    const props = schema.properties || {};
    const inputs = op.inputs || {};
    this.kinds = props.control && inputs.control !== "unused"
      ? controlKinds(schema, components) : [];
    const model = models.find((m) => m.id === modelId);
    this.loras = props.loras ? models.filter((m) => m.engine === "lora" &&
      (!model || !model.base || m.base === model.base))
      .sort((a, b) => Number(b.installed !== false) - Number(a.installed !== false)) : [];
    this.styles = styles.filter((s) => !s.operations || s.operations.includes(op.id));
    this.wantsReference = Boolean(inputs.reference) && inputs.reference !== "unused";
    this.controlRows = [];
    this.loraRows = [];
    this.layers = this.listLayers();
    const parts = [];
    if (this.styles.length) {
      this.style = el(d, "select", {}, options(d, [["", "(no style)"],
        ...this.styles.map((s) => [s.id, s.name || s.id])]));
      parts.push(el(d, "label", { class: "row" }, [el(d, "span", { text: "Style" }), this.style]));
    } else {
      this.style = null;
    }
    if (this.wantsReference) {
      this.reference = el(d, "select");
      this.fillLayerSelect(this.reference, true);
      parts.push(el(d, "label", { class: "row" },
        [el(d, "span", { text: "Reference layer" }), this.reference]));
    } else {
      this.reference = null;
    }
    if (this.kinds.length) {
      this.controlBox = el(d, "div", { class: "controls" });
      this.addControlButton = el(d, "button", { text: "Add control layer" });
      this.addControlButton.addEventListener("click", () => this.addControl());
      parts.push(el(d, "div", { class: "section", text: "Control layers" }), this.controlBox,
        this.addControlButton);
    }
    if (this.loras.length) {
      this.loraBox = el(d, "div", { class: "loras" });
      this.addLoraButton = el(d, "button", { text: "Add LoRA" });
      this.addLoraButton.addEventListener("click", () => this.addLora());
      parts.push(el(d, "div", { class: "section", text: "LoRAs" }), this.loraBox,
        this.addLoraButton);
    }
    if (this.kinds.length || this.wantsReference) {
      const refresh = el(d, "button", { text: "Refresh layers" });
      refresh.addEventListener("click", () => this.refreshLayers());
      parts.push(refresh);
    }
    setChildren(this.box, parts);
  }

  listLayers() {
    let doc = null;
    try {
      doc = this.host.activeDocument();
    } catch {
      return [];
    }
    return this.host.pixelLayers(doc).map((l) => ({ id: l.id, name: l.name }));
  }

  fillLayerSelect(select, withNone, chosen = select.value) {
    const items = this.layers.map((l) => [String(l.id), l.name]);
    setChildren(select, options(this.document,
      withNone ? [["", "(none)"], ...items] : items, chosen));
    if (chosen !== undefined && chosen !== null) {
      select.value = String(chosen);
    }
  }

  refreshLayers() {
    this.layers = this.listLayers();
    for (const row of this.controlRows) {
      this.fillLayerSelect(row.layer, false);
    }
    if (this.reference) {
      this.fillLayerSelect(this.reference, true);
    }
  }

  addControl({ layerId = null, kind = null, strength = 1, preprocess = false } = {}) {
    const d = this.document;
    const row = {
      layer: el(d, "select"),
      kind: el(d, "select", {}, options(d, this.kinds.map((k) => [k, k]), kind || this.kinds[0])),
      strength: el(d, "input", { type: "number", min: "0", max: "2", step: "0.05",
        value: String(strength) }),
      preprocess: el(d, "input", { type: "checkbox" }),
      remove: el(d, "button", { text: "Remove" }),
    };
    this.fillLayerSelect(row.layer, false, layerId === null ? undefined : String(layerId));
    row.kind.value = kind || this.kinds[0];
    row.strength.value = String(strength);
    row.preprocess.checked = preprocess;
    row.root = el(d, "div", { class: "control" }, [row.layer, row.kind, row.strength,
      el(d, "label", {}, [row.preprocess, el(d, "span", { text: "make the map" })]), row.remove]);
    row.remove.addEventListener("click", () => {
      this.controlRows = this.controlRows.filter((r) => r !== row);
      this.controlBox.removeChild(row.root);
    });
    this.controlRows.push(row);
    this.controlBox.appendChild(row.root);
    return row;
  }

  addLora({ id = null, weight = 1 } = {}) {
    const d = this.document;
    const row = {
      id: el(d, "select", {}, options(d, this.loras.map((m) => [m.id,
        `${m.name || m.id}${m.installed === false ? " (not installed)" : ""}`]), id)),
      weight: el(d, "input", { type: "number", min: "-2", max: "2", step: "0.05",
        value: String(weight) }),
      remove: el(d, "button", { text: "Remove" }),
    };
    if (id) {
      row.id.value = id;
    }
    row.weight.value = String(weight);
    row.root = el(d, "div", { class: "lora" }, [row.id, row.weight, row.remove]);
    row.remove.addEventListener("click", () => {
      this.loraRows = this.loraRows.filter((r) => r !== row);
      this.loraBox.removeChild(row.root);
    });
    this.loraRows.push(row);
    this.loraBox.appendChild(row.root);
    return row;
  }

  /**
   * What the widgets ask for: {params (control, loras), style, layers: {part: layerId},
   * settings (to restore with "Use these settings"), errors}.
   */
  values() {
    const errors = [];
    const params = {};
    const layers = {};
    const controls = this.controlRows.map((row, i) => {
      const layerId = Number(row.layer.value);
      if (!row.layer.value || !this.layers.some((l) => l.id === layerId)) {
        errors.push(`Control layer ${i + 1}: choose a layer`);
      }
      const strength = Number(row.strength.value);
      if (!Number.isFinite(strength) || strength < 0 || strength > 2) {
        errors.push(`Control layer ${i + 1}: strength between 0 and 2`);
      }
      layers[`control${i}`] = layerId;
      return { layerId, kind: row.kind.value, strength, preprocess: row.preprocess.checked };
    });
    if (controls.length) {
      params.control = controls.map((c, i) => {
        const item = { kind: c.kind, input: `control${i}`, strength: c.strength };
        if (c.preprocess) {
          item.preprocess = true;
        }
        return item;
      });
    }
    const loras = this.loraRows.map((row, i) => {
      const weight = Number(row.weight.value);
      if (!row.id.value) {
        errors.push(`LoRA ${i + 1}: choose a LoRA`);
      }
      if (!Number.isFinite(weight) || weight < -2 || weight > 2) {
        errors.push(`LoRA ${i + 1}: weight between -2 and 2`);
      }
      return { id: row.id.value, weight };
    });
    if (loras.length) {
      params.loras = loras;
    }
    const reference = this.reference && this.reference.value ? Number(this.reference.value)
      : null;
    if (reference !== null) {
      layers.reference = reference;
    }
    const style = this.style && this.style.value ? this.style.value : null;
    return { params, style, layers, errors, settings: { controls, loras, reference, style } };
  }

  /** Puts back what `values().settings` described (for "Use these settings"). */
  restore({ controls = [], loras = [], reference = null, style = null } = {}) {
    for (const c of controls) {
      if (this.kinds.length) {
        this.addControl(c);
      }
    }
    for (const l of loras) {
      if (this.loras.length) {
        this.addLora(l);
      }
    }
    if (this.reference) {
      this.reference.value = reference === null ? "" : String(reference);
    }
    if (this.style) {
      this.style.value = style || "";
    }
  }
}

module.exports = { CreativeControls, controlKinds, DEFAULT_KINDS };
