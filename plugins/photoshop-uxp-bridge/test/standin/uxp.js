"use strict";
/**
 * A stand-in for the `uxp` module: `entrypoints.setup` (UXP: may be called once per plugin;
 * panels are keyed by the entrypoint ids in manifest.json) and an in-memory `storage`.
 */

function createUxp() {
  const state = { setupCalls: 0, panels: null };
  return {
    entrypoints: {
      setup(definition) {
        state.setupCalls += 1;
        if (state.setupCalls > 1) {
          throw new Error("entrypoints.setup can be called only once");
        }
        state.panels = definition.panels || {};
      },
    },
    host: { name: "Photoshop", version: "25.0.0" },
    standin: state,
  };
}

module.exports = { createUxp };
