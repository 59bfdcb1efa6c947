"""Menu actions (Tools > Scripts), so Generate and Apply can have keyboard shortcuts."""

from __future__ import annotations

from krita import Extension

from . import docker

ACTIONS = (
    ("aiedit_generate", "aiedit: Generate", docker.generate_in_active_window),
    ("aiedit_apply", "aiedit: Apply results", docker.apply_in_active_window),
)


class AieditExtension(Extension):
    def setup(self):
        pass

    def createActions(self, window):  # noqa: N802 - Krita's name
        for name, text, handler in ACTIONS:
            action = window.createAction(name, text, "tools/scripts")
            action.triggered.connect(lambda _checked=False, run=handler: run())
