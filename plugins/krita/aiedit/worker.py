"""Background threads for network work; results come back to the GUI thread through Qt signals
(queued connections), so no Krita call ever happens off the GUI thread."""

from __future__ import annotations

import threading

from PyQt5.QtCore import QThread, pyqtSignal

from . import jobs
from .aiedit_client import AieditError, JobCanceled


class JobThread(QThread):
    """Runs one job: submit, wait, download. Emits ``progress(job)`` while it runs, then exactly
    one of ``succeeded(outcome)``, ``failed(message)``, ``canceled()``."""

    progress = pyqtSignal(dict)
    succeeded = pyqtSignal(object)
    failed = pyqtSignal(str)
    canceled = pyqtSignal()

    def __init__(self, client, spec: jobs.JobSpec, parent=None):
        super().__init__(parent)
        self.client = client
        self.spec = spec
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop; the server cancels it within about a second."""
        self._cancel.set()

    def run(self) -> None:
        try:
            outcome = jobs.execute(self.client, self.spec, on_progress=self.progress.emit,
                                   should_cancel=self._cancel.is_set)
        except JobCanceled:
            self.canceled.emit()
        except AieditError as error:
            self.failed.emit(str(error))
        except Exception as error:  # noqa: BLE001 - the docker must show every failure
            self.failed.emit(f"Unexpected error: {error!r}")
        else:
            self.succeeded.emit(outcome)


class CallThread(QThread):
    """Runs one short blocking call (health, operations) off the GUI thread."""

    done = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, call, parent=None):
        super().__init__(parent)
        self.call = call

    def run(self) -> None:
        try:
            value = self.call()
        except AieditError as error:
            self.failed.emit(str(error))
        except Exception as error:  # noqa: BLE001
            self.failed.emit(f"Unexpected error: {error!r}")
        else:
            self.done.emit(value)
