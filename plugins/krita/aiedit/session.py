"""What the docker keeps across a plugin reload or a Krita restart: a journal of submitted jobs
whose results were not applied or discarded yet, and the history of the session's jobs (prompt,
seed, parameters) to run again. Plain files beside Krita's settings; no Qt, no Krita."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from . import pixels as px
from .aiedit_client import JobJournal, Mask, Region
from .host import Capture, Placement
from .jobs import JobSpec

JOURNAL_FILE = "aiedit-krita-jobs.json"
HISTORY_FILE = "aiedit-krita-history.json"
HISTORY_SIZE = 50


class Journal:
    """Jobs in flight or finished but not applied; each entry describes the job and where its
    results go, with the selection mask saved beside it."""

    def __init__(self, folder: str):
        self.folder = folder
        self.journal = JobJournal(os.path.join(folder, JOURNAL_FILE))

    def record(self, job_id: str, server_url: str, spec: JobSpec) -> None:
        capture = spec.capture
        mask_file = ""
        if capture.mask is not None:
            mask_file = os.path.join(self.folder, f"aiedit-mask-{_safe(job_id)}.bin")
            os.makedirs(self.folder, exist_ok=True)
            with open(mask_file, "wb") as f:
                f.write(capture.mask.data)
        p = capture.placement
        self.journal.add(
            job_id, server_url=server_url, operation=spec.operation, model=spec.model,
            params=spec.params, region=capture.region.as_json(),
            doc_size=[capture.doc_width, capture.doc_height],
            layout=[capture.layout.model, capture.layout.depth, capture.layout.profile],
            placement=None if p is None else {
                "key": p.key, "file_name": p.file_name, "title": p.title, "epoch": p.epoch,
                "origin": list(p.origin), "size": list(p.size)},
            mask_file=mask_file)

    def entries(self, server_url: str | None = None) -> list[dict]:
        return [e for e in self.journal.entries()
                if server_url is None or e.get("server_url") == server_url]

    def forget(self, job_id: str) -> None:
        for entry in self.journal.entries():
            if entry["job_id"] == job_id and entry.get("mask_file"):
                try:
                    os.remove(entry["mask_file"])
                except OSError:
                    pass
        self.journal.remove(job_id)


def spec_from_entry(entry: dict) -> JobSpec:
    """The job description a journal entry holds (its capture without pixels: they were sent)."""
    region = Region(**entry["region"])
    mask = None
    if entry.get("mask_file"):
        try:
            with open(entry["mask_file"], "rb") as f:
                mask = Mask(region.width, region.height, f.read())
        except (OSError, ValueError):
            mask = None
    placement = None
    if entry.get("placement"):
        p = entry["placement"]
        placement = Placement(p["key"], p["file_name"], p["title"], p["epoch"],
                              tuple(p["origin"]), tuple(p["size"]))
    width, height = entry["doc_size"]
    capture = Capture(region, None, mask, width, height, None, px.layout_of(*entry["layout"]),
                      placement)
    return JobSpec(entry["operation"], entry.get("model") or "", dict(entry.get("params") or {}),
                   capture)


@dataclass
class HistoryEntry:
    """One job of the session: enough to run it again."""

    operation: str
    model: str
    params: dict
    seeds: list = field(default_factory=list)
    job_id: str = ""
    at: float = field(default_factory=time.time)

    @property
    def label(self) -> str:
        prompt = " ".join(str(self.params.get("prompt") or "").split())
        parts = [time.strftime("%H:%M", time.localtime(self.at)), self.operation]
        parts.append(prompt[:30] + ("…" if len(prompt) > 30 else "") if prompt else self.model)
        if self.seeds:
            parts.append("seed " + ", ".join(str(s) for s in self.seeds[:4]))
        return " · ".join(p for p in parts if p)


class History:
    """The last ``HISTORY_SIZE`` jobs, newest first, kept in a file."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, HISTORY_FILE)
        self.entries: list[HistoryEntry] = self._load()

    def add(self, entry: HistoryEntry) -> None:
        self.entries = [e for e in self.entries if not (entry.job_id and e.job_id == entry.job_id)]
        self.entries.insert(0, entry)
        del self.entries[HISTORY_SIZE:]
        self._save()

    def _load(self) -> list[HistoryEntry]:
        try:
            with open(self.path, encoding="utf-8") as f:
                return [HistoryEntry(**e) for e in json.load(f)][:HISTORY_SIZE]
        except (OSError, ValueError, TypeError):
            return []

    def _save(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump([e.__dict__ for e in self.entries], f, indent=1)
        os.replace(tmp, self.path)


def _safe(job_id: str) -> str:
    return "".join(c for c in job_id if c.isalnum() or c in "-_")[:80]
