"use strict";

const js = require("@eslint/js");
const globals = require("globals");

module.exports = [
  { ignores: ["node_modules/", "dist/"] },
  js.configs.recommended,
  {
    files: ["**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "commonjs",
      globals: { ...globals.commonjs },
    },
    rules: {
      "max-len": ["error", { code: 100, ignoreUrls: true, ignoreStrings: true }],
      "no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "prefer-const": "error",
      eqeqeq: "error",
      strict: ["error", "global"],
    },
  },
  {
    // Runs inside Photoshop's UXP: browser-like globals, no Node built-ins.
    files: ["index.js", "src/**/*.js"],
    languageOptions: { globals: { ...globals.browser } },
    rules: {
      "no-restricted-globals": ["error", "process", "Buffer", "__dirname"],
    },
  },
  {
    files: ["test/**/*.js", "scripts/**/*.js", "eslint.config.js"],
    languageOptions: { globals: { ...globals.node } },
  },
];
