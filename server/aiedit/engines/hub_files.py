"""Models that are a few files in a hub repo (detectors, ControlNets), not a diffusers pipeline:
where they are in the Hugging Face cache, whether they are complete, fetching and removing them.
`source.files` lists the files (glob patterns) an entry needs; each engine has its default."""

from __future__ import annotations

from pathlib import Path

from aiedit.engines import downloads
from aiedit.engines.catalog import ModelEntry
from aiedit.errors import OperationError


def files(entry: ModelEntry, default: list[str]) -> list[str]:
    return list(entry.source.get("files") or default)


def local_folder(entry: ModelEntry) -> Path | None:
    source = entry.source
    if "path" in source:
        folder = Path(source["path"]).expanduser()
        return folder if folder.is_dir() else None
    folder = downloads.snapshot_folder(source["repo"], entry.revision)
    if folder is not None and source.get("subfolder"):
        folder = folder / source["subfolder"]
    return folder


def is_installed(entry: ModelEntry, default: list[str]) -> bool:
    """Every file pattern has its files, and safetensors weights are whole (a download cut off
    half-way does not count)."""
    folder = local_folder(entry)
    if folder is None or not folder.is_dir():
        return False
    for pattern in files(entry, default):
        found = list(folder.glob(pattern))
        if not found:
            return False
        if pattern.endswith(".safetensors") and not any(
            downloads.safetensors_problem(f) is None for f in found
        ):
            return False
    return True


def pull_command(entry: ModelEntry) -> str:
    return f"aiedit models pull {entry.id}"


def prepare(entry: ModelEntry, default: list[str], report: downloads.Report | None = None) -> None:
    """Make sure the weights are on disk: download them (online) or fail with how to get them."""
    if is_installed(entry, default):
        return
    if "path" in entry.source or downloads.hub_offline():
        raise OperationError(
            "model_not_available",
            f"model {entry.id} is not downloaded and this server cannot fetch it "
            f"{'(HF_HUB_OFFLINE=1)' if downloads.hub_offline() else ''}. Get it with "
            f"`{pull_command(entry)}` ({entry.download_size / 1e6:.0f} MB).",
        )
    try:
        downloads.fetch_once(entry, lambda: is_installed(entry, default),
                             lambda progress: _fetch(entry, default, progress), report)
    except Exception as exc:
        raise OperationError(
            "model_not_available",
            f"downloading model {entry.id} failed: {exc}. Retry with `{pull_command(entry)}`.",
        ) from exc


def download(entry: ModelEntry, default: list[str], report: downloads.Report | None = None) -> Path:
    """Fetch the entry's files into the HF cache (once: a download under way is waited for)."""
    if "path" in entry.source:
        folder = local_folder(entry)
        if folder is None:
            raise FileNotFoundError(f"{entry.source['path']} does not exist")
        return folder
    with downloads.model_lock(entry.id, downloads.hub_cache()):
        if is_installed(entry, default):
            return local_folder(entry)
        return _fetch(entry, default, report)


def _fetch(entry: ModelEntry, default: list[str], report: downloads.Report | None = None) -> Path:
    if downloads.hub_offline():
        raise RuntimeError("HF_HUB_OFFLINE is set, so the hub cannot be reached; unset it")
    from huggingface_hub import snapshot_download

    report = report or (lambda done, total: None)
    report(0, entry.download_size)
    snapshot_download(
        entry.source["repo"],
        revision=entry.revision,
        cache_dir=str(downloads.hub_cache()),
        allow_patterns=[
            f"{entry.source['subfolder'].strip('/')}/{p}" if entry.source.get("subfolder") else p
            for p in files(entry, default)
        ],
        tqdm_class=downloads.make_tqdm(lambda done, _t: report(done, entry.download_size)),
    )
    report(entry.download_size, entry.download_size)
    return local_folder(entry)


def remove(entry: ModelEntry) -> int:
    from aiedit.engines import diffusion  # the same cache layout: delete the snapshot

    return diffusion.remove(entry)
