"""Errors that engines and operations both raise. They live below both layers, so an engine
never imports an operation module; `aiedit.ops.base` re-exports them for operations."""

from __future__ import annotations


class Canceled(Exception):
    """Raised inside an operation when its job was canceled; the runner marks it canceled."""


class OperationError(Exception):
    """A failure the user can act on (bad combination of inputs, model cannot do this)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
