"use strict";
/**
 * Turns an operation's `params_schema` (JSON Schema from GET /v1/operations) into form fields,
 * and the form's text values back into typed params. No DOM here.
 */

const PROMPT_FIELD = "prompt";
// Lists and objects (control layers, LoRAs) have widgets of their own (src/creative.js).
const STRUCTURED = new Set(["array", "object"]);

function schemaType(property) {
  if (Array.isArray(property.enum)) {
    return "enum";
  }
  let type = property.type;
  if (!type && Array.isArray(property.anyOf)) {
    type = property.anyOf.map((p) => p.type).filter(Boolean);
  }
  const types = (Array.isArray(type) ? type : [type]).filter((t) => t && t !== "null");
  return types[0] || "string";
}

/**
 * Fields for every schema property except the prompt (the panel has its own prompt box) and
 * lists or objects.
 * Each field: {name, label, type, required, default, minimum, maximum, choices, description}.
 */
function fieldsFromSchema(schema) {
  const properties = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  return Object.entries(properties)
    .filter(([name, property]) => name !== PROMPT_FIELD && !STRUCTURED.has(schemaType(property)))
    .map(([name, property]) => ({
      name,
      label: property.title || name.replace(/_/g, " "),
      type: schemaType(property),
      required: required.has(name),
      default: property.default,
      minimum: property.minimum,
      maximum: property.maximum,
      choices: property.enum || null,
      description: property.description || "",
    }));
}

function hasPrompt(schema) {
  return Boolean(schema && schema.properties && schema.properties[PROMPT_FIELD]);
}

function promptRequired(schema) {
  return Boolean(schema && (schema.required || []).includes(PROMPT_FIELD));
}

function parseValue(field, text) {
  if (field.type === "boolean") {
    return { value: text === true || text === "true" };
  }
  if (field.type === "integer" || field.type === "number") {
    const value = Number(text);
    if (!Number.isFinite(value) || (field.type === "integer" && !Number.isInteger(value))) {
      return { error: `${field.label}: enter ${field.type === "integer" ? "a whole number" : "a number"}` };
    }
    if (field.minimum !== undefined && value < field.minimum) {
      return { error: `${field.label}: at least ${field.minimum}` };
    }
    if (field.maximum !== undefined && value > field.maximum) {
      return { error: `${field.label}: at most ${field.maximum}` };
    }
    return { value };
  }
  if (field.type === "enum" && !field.choices.map(String).includes(String(text))) {
    return { error: `${field.label}: choose one of ${field.choices.join(", ")}` };
  }
  if (field.type === "enum") {
    return { value: field.choices.find((c) => String(c) === String(text)) };
  }
  return { value: String(text) };
}

/**
 * Typed params from text values keyed by field name, plus the prompt. Empty optional values
 * are left out so the server applies its defaults. Returns {params, errors}.
 */
function paramsFromValues(schema, values, prompt = "") {
  const params = {};
  const errors = [];
  if (hasPrompt(schema)) {
    if (prompt.trim()) {
      params[PROMPT_FIELD] = prompt.trim();
    } else if (promptRequired(schema)) {
      errors.push("prompt: describe what you want");
    }
  }
  for (const field of fieldsFromSchema(schema)) {
    const text = values[field.name];
    if (text === undefined || text === null || text === "") {
      if (field.required && field.default === undefined) {
        errors.push(`${field.label}: required`);
      }
      continue;
    }
    const parsed = parseValue(field, text);
    if (parsed.error) {
      errors.push(parsed.error);
    } else {
      params[field.name] = parsed.value;
    }
  }
  return { params, errors };
}

module.exports = { fieldsFromSchema, paramsFromValues, hasPrompt, promptRequired };
