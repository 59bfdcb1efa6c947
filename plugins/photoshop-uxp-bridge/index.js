"use strict";
// UXP entry point: registers the "aieditPanel" entrypoint declared in manifest.json.

const uxp = require("uxp");
const photoshop = require("photoshop");
const { createPanel } = require("./src/panel");

let panel = null;

uxp.entrypoints.setup({
  plugin: {
    // The plugin is unloaded or reloaded: stop following jobs; the journal keeps them and the
    // next panel follows them again.
    destroy() {
      if (panel) {
        panel.close();
      }
    },
  },
  panels: {
    aieditPanel: {
      show() {
        if (!panel) {
          panel = createPanel(document.getElementById("aiedit"), {
            photoshop, storage: window.localStorage, uxp,
          });
        }
      },
    },
  },
});
