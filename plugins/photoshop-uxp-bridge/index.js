"use strict";
// UXP entry point: registers the "aieditPanel" entrypoint declared in manifest.json.

const { entrypoints } = require("uxp");
const photoshop = require("photoshop");
const { createPanel } = require("./src/panel");

let panel = null;

entrypoints.setup({
  panels: {
    aieditPanel: {
      show() {
        if (!panel) {
          panel = createPanel(document.getElementById("aiedit"), {
            photoshop, storage: window.localStorage,
          });
        }
      },
    },
  },
});
