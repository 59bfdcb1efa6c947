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

    submitted = pyqtSignal(dict)
    progress = pyqtSignal(dict)
    preview = pyqtSignal(bytes)  # a step preview's PNG
    succeeded = pyqtSignal(object)
    failed = pyqtSignal(str)
    canceled = pyqtSignal()

    def __init__(self, client, spec: jobs.JobSpec, parent=None, job_id: str = ""):
        """With ``job_id`` the job was submitted before (a journal entry): wait and download."""
        super().__init__(parent)
        self.client = client
        self.spec = spec
        self.job_id = job_id
        self.submitted_id = job_id
        self.error: Exception | None = None
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop; the server cancels it within about a second."""
        self._cancel.set()

    def _preview(self, preview) -> None:
        self.preview.emit(bytes(preview.png))

    def run(self) -> None:
        try:
            if self.job_id:
                job = self.client.wait(self.job_id, on_progress=self.progress.emit,
                                       should_cancel=self._cancel.is_set,
                                       on_preview=self._preview)
                outcome = jobs.download(self.client, job, self.spec)
            else:
                outcome = jobs.execute(self.client, self.spec, on_progress=self.progress.emit,
                                       should_cancel=self._cancel.is_set,
                                       on_submitted=self.submitted.emit,
                                       on_preview=self._preview)
        except JobCanceled:
            self.canceled.emit()
        except AieditError as error:
            self.error = error
            self.failed.emit(str(error))
        except Exception as error:  # noqa: BLE001 - the docker must show every failure
            self.error = error
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
