"use strict";
/** Makes `require("photoshop")` and `require("uxp")` resolve to stand-ins inside tests. */

const Module = require("node:module");

const current = { photoshop: null, uxp: null };
const originalLoad = Module._load;

Module._load = function load(request, parent, isMain) {
  if (request === "photoshop" || request === "uxp") {
    if (!current[request]) {
      throw new Error(`test: no stand-in installed for "${request}"`);
    }
    return current[request];
  }
  return originalLoad.call(this, request, parent, isMain);
};

function installStandins({ photoshop, uxp }) {
  current.photoshop = photoshop;
  current.uxp = uxp;
}

module.exports = { installStandins };
