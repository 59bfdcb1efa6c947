"use strict";
/**
 * The little of the DOM the panel uses (UXP implements these standard calls): elements with
 * attributes, children, text, value, events. Enough to drive the panel from a test.
 */

class FakeElement {
  constructor(ownerDocument, tagName) {
    this.ownerDocument = ownerDocument;
    this.tagName = tagName.toUpperCase();
    this.children = [];
    this.attributes = {};
    this.listeners = {};
    this.style = {};
    this.textContent = "";
    this.className = "";
    this.hidden = false;
    this.checked = false;
    this._value = "";
  }

  get type() {
    return this.attributes.type || "";
  }

  get value() {
    if (this.tagName === "SELECT" && this._value === "" && this.children.length) {
      return this.children[0].attributes.value;
    }
    return this._value;
  }

  set value(v) {
    this._value = String(v);
  }

  get disabled() {
    return "disabled" in this.attributes;
  }

  set disabled(on) {
    if (on) {
      this.attributes.disabled = "";
    } else {
      delete this.attributes.disabled;
    }
  }

  setAttribute(name, value) {
    if (name === "value") {
      this._value = String(value);
    } else if (name === "class") {
      this.className = value;
    }
    this.attributes[name] = String(value);
  }

  appendChild(child) {
    this.children.push(child);
    return child;
  }

  get firstChild() {
    return this.children[0] || null;
  }

  removeChild(child) {
    this.children = this.children.filter((c) => c !== child);
    return child;
  }

  addEventListener(type, listener) {
    (this.listeners[type] ||= []).push(listener);
  }

  /** Test helper: fires an event and waits for async listeners. */
  async fire(type) {
    await Promise.all((this.listeners[type] || []).map((l) => l({ type, target: this })));
  }

  /** Test helper: every descendant, depth first. */
  descendants() {
    return this.children.flatMap((c) => [c, ...c.descendants()]);
  }
}

class FakeDocument {
  createElement(tag) {
    return new FakeElement(this, tag);
  }
}

class MemoryStorage {
  constructor() {
    this.items = new Map();
  }

  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }

  setItem(key, value) {
    this.items.set(key, String(value));
  }
}

module.exports = { FakeDocument, MemoryStorage };
