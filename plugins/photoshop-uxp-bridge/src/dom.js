"use strict";
/* Small DOM helpers the panel's parts share, written with calls every UXP version has. */

/** A new element with attributes (`text` sets its text) and children. */
function el(document, tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") {
      node.textContent = value;
    } else {
      node.setAttribute(name, value);
    }
  }
  for (const child of children) {
    node.appendChild(child);
  }
  return node;
}

/** Replaces a node's children. */
function setChildren(node, children) {
  while (node.firstChild) {
    node.removeChild(node.firstChild);
  }
  for (const child of children) {
    node.appendChild(child);
  }
}

module.exports = { el, setChildren };
