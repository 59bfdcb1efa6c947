"""Diffusion engine: catalog entries whose weights are a diffusers pipeline.

An entry's `source` names a hub repo and the pipeline class that runs it:

    source = { repo = "stabilityai/sdxl-turbo", revision = "main", variant = "fp16",
               pipeline = "StableDiffusionXLPipeline" }

(`subfolder` selects a pipeline inside a repo; `path` instead of `repo` loads a local folder).
Models resolve through the Hugging Face cache exactly as `from_pretrained` does, so
`HF_HUB_OFFLINE`, `HF_HUB_CACHE` and `HF_HOME` are honoured. Loading never downloads behind a
job's back unless the hub is reachable; offline, a missing model fails with the command to get it.

`options` in an entry tune how it runs: `dtype`, the memory savers of `devices.SAVERS`,
`native_size` (int side or [width, height]), `multiple` (pixel multiple the model needs) and
`call` (fixed keyword arguments for the pipeline call, e.g. `max_sequence_length`) and
`preview_vae` (a tiny autoencoder for step previews, e.g. `madebyollin/taesdxl`; see `Previewer`).
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiedit import logs
from aiedit.engines import devices, downloads
from aiedit.engines.cache import LoadedModel
from aiedit.engines.catalog import ModelEntry
from aiedit.errors import OperationError

if TYPE_CHECKING:
    from PIL import Image

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".onnx", ".gguf")
VARIANTS = ("fp16", "bf16", "fp32", "fp8", "int8")
PREVIEW_SIDE = 256  # step previews are at most this many pixels on their longer side
# latent channel -> (R, G, B) in [-1, 1]: the linear latent-to-RGB approximation of the
# Stable Diffusion 1.x/2.x and SDXL VAEs (as published with their latent preview tools)
_LATENT_RGB = {
    "sd": [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721],
           [-0.2120, -0.2616, -0.7177]],
    "sdxl": [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362],
             [-0.3165, -0.2492, -0.2188]],
}
log = logging.getLogger(__name__)


# --- where the weights are ----------------------------------------------------------------------


def local_folder(entry: ModelEntry) -> Path | None:
    """The pipeline folder on disk (inside the HF cache, or a local path), or None."""
    source = entry.source
    if "path" in source:
        folder = Path(source["path"]).expanduser()
    else:
        folder = downloads.snapshot_folder(source["repo"], entry.revision)
        if folder is None:
            return None
    if source.get("subfolder"):
        folder = folder / source["subfolder"]
    return folder if folder.is_dir() else None


def requirements(entry: ModelEntry) -> dict[str, str]:
    """Python packages this engine needs, and the extra that installs them."""
    return {name: "ml" for name in ("torch", "diffusers", "transformers", "huggingface_hub")}


def is_installed(entry: ModelEntry) -> bool:
    """The pipeline's files are on disk (model index and every component folder)."""
    return downloads.pipeline_complete(local_folder(entry))


def pull_command(entry: ModelEntry) -> str:
    return f"aiedit models pull {entry.id}"


def not_available(entry: ModelEntry, why: str) -> OperationError:
    return OperationError(
        "model_not_available",
        f"model {entry.id} is not downloaded and {why}. Get it with `{pull_command(entry)}` "
        f"({entry.download_size / 1e9:.1f} GB) on a machine that can reach the Hugging Face hub "
        "(then copy its Hugging Face cache here), or unset HF_HUB_OFFLINE and retry.",
    )


def prepare(entry: ModelEntry, report: downloads.Report | None = None) -> None:
    """Make sure the weights are on disk: download them (online) or fail with how to get them.
    A model another job (or `aiedit models pull`) is fetching is waited for, not fetched again."""
    if is_installed(entry):
        return
    if "path" in entry.source:
        raise OperationError(
            "model_not_available",
            f"model {entry.id}: no diffusers pipeline in {entry.source['path']}",
        )
    if downloads.hub_offline():
        raise not_available(entry, "this server is offline (HF_HUB_OFFLINE=1)")
    try:
        downloads.fetch_once(entry, lambda: is_installed(entry),
                             lambda progress: _fetch(entry, progress), report)
    except OperationError:
        raise
    except Exception as exc:
        raise OperationError(
            "model_not_available",
            f"downloading model {entry.id} failed: {exc}. Retry with `{pull_command(entry)}`.",
        ) from exc


# --- downloading, verifying, removing -----------------------------------------------------------


def download(entry: ModelEntry, report: downloads.Report | None = None) -> Path:
    """Fetch the files the pipeline needs (one variant, safetensors) into the HF cache, at the
    catalog's pinned revision; a download already under way elsewhere is waited for."""
    source = entry.source
    if "path" in source:
        folder = local_folder(entry)
        if folder is None:
            raise FileNotFoundError(f"{source['path']} does not exist")
        return folder
    with downloads.model_lock(entry.id, downloads.hub_cache()):
        if is_installed(entry):
            return local_folder(entry)
        return _fetch(entry, report)


def _fetch(entry: ModelEntry, report: downloads.Report | None = None) -> Path:
    if downloads.hub_offline():
        raise RuntimeError(
            "HF_HUB_OFFLINE is set, so the hub cannot be reached; unset it to download"
        )
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    source = entry.source
    repo, revision = source["repo"], entry.revision
    prefix = f"{source['subfolder'].strip('/')}/" if source.get("subfolder") else ""
    cache = str(downloads.hub_cache())
    info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    sizes = {s.rfilename: int(s.size or 0) for s in info.siblings}
    index = hf_hub_download(repo, f"{prefix}model_index.json", revision=revision, cache_dir=cache)
    components = pipeline_components(json.loads(Path(index).read_text()))
    wanted = select_files(sizes, components, source.get("variant"), prefix)
    total = sum(sizes[name] for name in wanted)
    report = report or (lambda done, total: None)
    report(0, total)
    snapshot_download(
        repo,
        revision=revision,
        cache_dir=cache,
        allow_patterns=wanted,
        tqdm_class=downloads.make_tqdm(lambda done, _t: report(done, total)),
    )
    report(total, total)
    return local_folder(entry)


def pipeline_components(model_index: dict) -> list[str]:
    return [
        name
        for name, spec in model_index.items()
        if not name.startswith("_") and isinstance(spec, list) and None not in spec
    ]


def select_files(
    sizes: dict[str, int], components: list[str], variant: str | None, prefix: str = ""
) -> list[str]:
    """The repo files a pipeline needs: its index, each component's configs and tokenizer files,
    and each component's safetensors weights in `variant` (when the repo has it) or plain."""
    wanted = [f"{prefix}model_index.json"]
    for component in components:
        folder = f"{prefix}{component}/"
        files = [n for n in sizes if n.startswith(folder) and "/" not in n[len(folder) :]]
        weights = [
            n
            for n in files
            if n.endswith(".safetensors") or fnmatch.fnmatch(n, "*.safetensors.index*.json")
        ]
        wanted += [n for n in files if not n.endswith(WEIGHT_SUFFIXES) and n not in weights]
        tagged = [n for n in weights if variant and _variant_of(n) == variant]
        wanted += tagged or [n for n in weights if _variant_of(n) is None]
    return sorted(set(wanted) & set(sizes) | {f"{prefix}model_index.json"})


def _variant_of(filename: str) -> str | None:
    parts = Path(filename).name.replace("-", ".").split(".")
    return next((p for p in parts if p in VARIANTS), None)


def verify(entry: ModelEntry, online_hashes: bool = False) -> list[str]:
    """Problems with the files on disk (empty when all is well): missing parts, truncated
    safetensors files, dangling cache links; with `online_hashes`, sha256 against the hub."""
    folder = local_folder(entry)
    if folder is None or not (folder / "model_index.json").is_file():
        return [f"not downloaded; get it with `{pull_command(entry)}`"]
    problems = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() and not path.exists():
            problems.append(f"{path.relative_to(folder)}: its data is missing from the cache")
        elif path.suffix == ".safetensors" and path.is_file():
            problem = downloads.safetensors_problem(path)
            if problem:
                problems.append(f"{path.relative_to(folder)}: {problem}")
    if not problems and not downloads.pipeline_complete(folder):
        problems.append("incomplete: a component's folder or its safetensors weights are missing")
    if online_hashes and "repo" in entry.source:
        problems += _check_hashes(entry, folder)
    return problems


def _check_hashes(entry: ModelEntry, folder: Path) -> list[str]:
    import hashlib

    from huggingface_hub import HfApi

    source = entry.source
    info = HfApi().model_info(source["repo"], revision=entry.revision, files_metadata=True)
    root = downloads.snapshot_folder(source["repo"], entry.revision)
    problems = []
    for sibling in info.siblings:
        path = root / sibling.rfilename
        if sibling.lfs is None or not path.is_file():
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                digest.update(chunk)
        if digest.hexdigest() != sibling.lfs.sha256:
            problems.append(f"{sibling.rfilename}: sha256 differs from the hub's")
    return problems


def remove(entry: ModelEntry) -> int:
    """Delete the entry's files from the cache (blobs no other revision uses). Returns bytes."""
    if "path" in entry.source:
        raise ValueError(
            f"model {entry.id} is a local folder ({entry.source['path']}); delete it yourself"
        )
    snapshot = downloads.snapshot_folder(entry.source["repo"], entry.revision)
    if snapshot is None:
        return 0
    from huggingface_hub import scan_cache_dir

    cache = scan_cache_dir(downloads.hub_cache())
    strategy = cache.delete_revisions(snapshot.name)
    freed = strategy.expected_freed_size
    strategy.execute()
    if snapshot.exists():  # a snapshot written by hand (no blobs): remove it directly
        freed = freed or sum(p.stat().st_size for p in snapshot.rglob("*") if p.is_file())
        shutil.rmtree(snapshot)
    repo = downloads.repo_folder(entry.source["repo"])
    if repo.is_dir() and not any((repo / "snapshots").glob("*")):
        shutil.rmtree(repo)
    return int(freed)


# --- loading ------------------------------------------------------------------------------------


def load(entry: ModelEntry, device: str) -> LoadedModel:
    """Load the entry's pipeline onto `device` ('auto' = cuda > mps > cpu) with memory savers
    chosen from free memory; downloads first only when the hub is reachable."""
    prepare(entry)
    device = devices.resolve(device)
    pipe = _from_pretrained(entry, devices.dtype_for(device, entry))
    chosen = devices.plan(entry, device)
    try:
        devices.apply(pipe, chosen, device)
    except Exception as exc:
        if not devices.is_out_of_memory(exc):
            raise
        devices.release(device)
        chosen = devices.lowest(entry, device)
        devices.apply(pipe, chosen, device)
    pipe.set_progress_bar_config(disable=True)
    model = DiffusionModel(pipe, entry, device, chosen)
    return LoadedModel(
        entry=entry,
        engine="diffusion",
        obj=model,
        device=device,
        size_bytes=model.size_bytes,
        info={
            "pipeline": type(pipe).__name__,
            "dtype": str(model.dtype),
            "memory": chosen.describe(),
        },
    )


def _from_pretrained(entry: ModelEntry, dtype):
    import diffusers

    source = entry.source
    name = source.get("pipeline", "DiffusionPipeline")
    cls = getattr(diffusers, name, None)
    if cls is None:
        raise OperationError(
            "engine_unsupported",
            f"model {entry.id} needs diffusers' {name}, which this diffusers "
            f"({diffusers.__version__}) lacks; upgrade diffusers",
        )
    kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True}  # never unpickle weights
    if source.get("variant"):
        kwargs["variant"] = source["variant"]
    if "repo" in source and not source.get("subfolder"):
        pipe = cls.from_pretrained(
            source["repo"],
            revision=entry.revision,
            cache_dir=str(downloads.hub_cache()),
            local_files_only=True,
            **kwargs,
        )
    else:
        pipe = cls.from_pretrained(str(local_folder(entry)), **kwargs)
    logs.adopt_library_loggers()  # their warnings may quote a prompt: through our filter
    return pipe


# --- running ------------------------------------------------------------------------------------


@dataclass
class Result:
    images: list[Image.Image]  # the images, or a video's frames
    seed: int
    info: dict[str, Any] = field(default_factory=dict)


class DiffusionModel:
    """A loaded pipeline and how to call it with the operations' generic parameters."""

    def __init__(self, pipe, entry: ModelEntry, device: str, plan: devices.MemoryPlan):
        self.pipe = pipe
        self.entry = entry
        self.device = device
        self.plan = plan
        self._accepted = _call_parameters(pipe)
        self._siblings: dict[tuple, Any] = {}
        self._loras: set[str] = set()  # adapters loaded into the pipeline (kept between jobs)
        self._ip_adapter: str | None = None  # the IP-Adapter in the UNet now, if any
        self._ip_holders: list = []  # pipelines (main, siblings) given its image encoder
        self.previewer = Previewer(entry)

    # facts the operations need

    @property
    def name(self) -> str:
        return type(self.pipe).__name__

    @property
    def dtype(self):
        return getattr(self.pipe, "dtype", None)

    @property
    def size_bytes(self) -> int:
        import torch

        total = 0
        for part in self.pipe.components.values():
            if isinstance(part, torch.nn.Module):
                total += sum(
                    t.numel() * t.element_size() for t in (*part.parameters(), *part.buffers())
                )
        return total

    @property
    def is_qwen(self) -> bool:
        return self.name.startswith("QwenImage")

    @property
    def multiple(self) -> int:
        """Width and height must be multiples of this many pixels."""
        if "multiple" in self.entry.options:
            return int(self.entry.options["multiple"])
        pipe = self.pipe
        if hasattr(pipe, "vae_spatial_compression_ratio"):  # LTX checks for multiples of 32
            ratio = pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size
            return math.lcm(32, int(ratio))
        if hasattr(pipe, "vae_scale_factor_spatial"):  # Wan
            return int(pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1])
        unet = getattr(pipe, "unet", None)
        if unet is not None:  # Stable Diffusion pipelines check for multiples of 8
            downs = 2 ** (len(unet.config.block_out_channels) - 1)
            return math.lcm(8, int(pipe.vae_scale_factor * downs))
        return int(pipe.vae_scale_factor * 2)  # packed 2x2 latents (FLUX, Qwen-Image)

    @property
    def frame_multiple(self) -> int:
        """Video: frame counts must be k * this + 1."""
        pipe = self.pipe
        return int(
            getattr(pipe, "vae_temporal_compression_ratio", None)
            or getattr(pipe, "vae_scale_factor_temporal", 1)
        )

    @property
    def native_area(self) -> int:
        size = self.entry.options.get("native_size", 1024)
        if isinstance(size, (list, tuple)):
            return int(size[0]) * int(size[1])
        return int(size) ** 2

    def fit(self, width: int, height: int, max_side: int | None = None) -> tuple[int, int]:
        """A working size with the aspect of width x height, about the model's native area (and
        at most `max_side` on its longer side), in the multiples the model needs."""
        scale = (self.native_area / float(width * height)) ** 0.5
        if max_side:
            scale = min(scale, max_side / float(max(width, height)))
        step = self.multiple
        return (
            max(step, round(width * scale / step) * step),
            max(step, round(height * scale / step) * step),
        )

    def accepts(self, name: str) -> bool:
        return name in self._accepted

    def pipeline_for(self, task: str | None = None, controlnet=None):
        """The loaded pipeline, or its sibling for `task` (text2image, image2image, inpaint),
        optionally with a ControlNet: diffusers' `AutoPipelineFor*.from_pipe`, which shares the
        loaded weights (no second copy). Siblings are kept with the model."""
        if task is None and controlnet is None:
            return self.pipe
        nets = controlnet if isinstance(controlnet, list) else [controlnet]
        key = (task, tuple(id(net) for net in nets if net is not None) or None)
        if key not in self._siblings:
            import diffusers

            auto = {
                "text2image": diffusers.AutoPipelineForText2Image,
                "image2image": diffusers.AutoPipelineForImage2Image,
                "inpaint": diffusers.AutoPipelineForInpainting,
            }[task or task_of(self.name)]
            extra = {} if controlnet is None else {"controlnet": controlnet}
            try:
                sibling = auto.from_pipe(self.pipe, **extra)
            except (ValueError, KeyError, TypeError) as exc:
                what = f"{task or 'its task'}" + (" with a ControlNet" if controlnet else "")
                raise OperationError(
                    "engine_unsupported",
                    f"model {self.entry.id} ({self.name}) cannot run {what} in this diffusers "
                    f"({diffusers.__version__}): {exc}",
                ) from exc
            sibling.set_progress_bar_config(disable=True)
            self._siblings[key] = sibling
        return self._siblings[key]

    def use_loras(self, loras: list[tuple[str, Path, float]]) -> None:
        """Make exactly these LoRAs (adapter name, safetensors file, weight) active: each is
        loaded into the pipeline once and kept there; with none, every loaded one is switched
        off (the base weights are untouched, so the output is the base model's again)."""
        pipe = self.pipe
        for name, path, _weight in loras:
            if name in self._loras:
                continue
            try:
                pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
            except (ValueError, KeyError, RuntimeError) as exc:
                if name in _adapters(pipe):
                    pipe.delete_adapters(name)
                raise OperationError(
                    "lora_does_not_fit",
                    f"LoRA {path.name} does not fit model {self.entry.id}: {exc}",
                ) from exc
            self._loras.add(name)
        if loras:
            pipe.enable_lora()
            pipe.set_adapters([n for n, _, _ in loras], adapter_weights=[w for _, _, w in loras])
        elif self._loras:
            pipe.disable_lora()

    def holds_ip_adapter(self, adapter) -> bool:
        return self._ip_adapter == adapter.id

    def use_ip_adapter(self, pipe=None, adapter=None, scale: float = 1.0) -> None:
        """Make `adapter` (engines.ip_adapter.IPAdapter) the image prompt of `pipe` (the model's
        pipeline or a sibling: they share the UNet) at `scale`; with None, take any adapter out
        again, so the UNet's attention is the base model's, exactly."""
        if adapter is None:
            if self._ip_adapter is not None:
                self.pipe.unload_ip_adapter()  # the shared UNet's attention processors
                for holder in self._ip_holders:
                    holder.image_encoder = None
                    if getattr(holder, "feature_extractor", None) is not None:
                        holder.feature_extractor = None
                self._ip_holders, self._ip_adapter = [], None
            return
        if not hasattr(pipe, "load_ip_adapter"):
            raise OperationError(
                "reference_unsupported",
                f"reference: model {self.entry.id} ({type(pipe).__name__}) takes no IP-Adapter",
            )
        if self._ip_adapter != adapter.id:
            self.use_ip_adapter(pipe, None)
            pipe.register_modules(image_encoder=adapter.image_encoder)
            try:
                pipe.load_ip_adapter(adapter.state_dict, subfolder=None, weight_name=None)
            except (ValueError, KeyError, RuntimeError) as exc:
                self._ip_adapter, self._ip_holders = adapter.id, [pipe]
                self.use_ip_adapter(pipe, None)
                raise OperationError(
                    "reference_does_not_fit",
                    f"IP-Adapter {adapter.id} does not fit model {self.entry.id}: {exc}",
                ) from exc
            self._ip_adapter = adapter.id
        if pipe.image_encoder is not adapter.image_encoder or pipe.feature_extractor is None:
            from transformers import CLIPImageProcessor

            size = adapter.image_size
            pipe.register_modules(
                image_encoder=adapter.image_encoder,
                feature_extractor=pipe.feature_extractor
                or CLIPImageProcessor(size=size, crop_size=size),
            )
        if all(holder is not pipe for holder in self._ip_holders):
            self._ip_holders.append(pipe)
        pipe.set_ip_adapter_scale(scale)

    def forget_siblings(self, controlnet) -> None:
        """Drop the siblings built around `controlnet` (it is being unloaded)."""
        for key in [k for k in self._siblings if k[1] and id(controlnet) in k[1]]:
            del self._siblings[key]

    # the call

    def __call__(
        self,
        progress,
        *,
        seed: int | None = None,
        stage: str = "denoising",
        task: str | None = None,
        controlnet=None,
        ip_adapter=None,
        **generic,
    ) -> Result:
        """Run the pipeline (or its `task` sibling, see `pipeline_for`) with generic parameters
        (prompt, negative_prompt, steps, guidance, image, mask, reference, width, height,
        strength, frames, fps, max_area, count, control...). Reports each step to `progress`
        (which raises Canceled to stop at the next step); an out-of-memory error retries once
        with the lowest-memory settings."""
        seed = random.randrange(2**32) if seed is None else int(seed)
        pipe = self.pipeline_for(task, controlnet)
        span = generic.get("ip_adapter_span") if ip_adapter is not None else None
        self.use_ip_adapter(pipe, ip_adapter, _ip_scale_at(span, 0.0) if span else 1.0)
        kwargs = self.pipeline_kwargs(generic, _call_parameters(pipe))
        for attempt in (1, 2):
            try:
                return Result(
                    self._run(pipe, progress, seed, kwargs, stage, span),
                    seed,
                    {"memory": self.plan.describe()},
                )
            except Exception as exc:
                if not devices.is_out_of_memory(exc):
                    raise
                devices.release(self.device)
                lowest = devices.lowest(self.entry, self.device)
                if attempt == 2 or self.plan == lowest:
                    raise OperationError(
                        "out_of_memory",
                        f"model {self.entry.id} ran out of memory on {self.device} even with "
                        f"memory savers ({lowest.describe()}); try a smaller region, a lower "
                        "working resolution or a lighter model",
                    ) from exc
                self.plan = lowest
                devices.apply(self.pipe, lowest, self.device)
        raise AssertionError("unreachable")

    def pipeline_kwargs(self, generic: dict, accepted: set[str] | None = None) -> dict:
        kwargs: dict[str, Any] = {}
        accepted = self._accepted if accepted is None else accepted

        def put(name: str, value) -> None:
            if value is not None and name in accepted:
                kwargs[name] = value

        guidance = generic.get("guidance")
        negative = generic.get("negative_prompt") or None
        if self.is_qwen and negative is None and guidance and guidance > 1:
            negative = " "  # Qwen-Image applies true CFG only with a negative prompt
        put("prompt", generic.get("prompt"))
        put("negative_prompt", negative)
        strength = generic.get("strength") if "strength" in accepted else None
        put("num_inference_steps", denoising_schedule(generic.get("steps"), strength))
        put("true_cfg_scale" if self.is_qwen else "guidance_scale", guidance)
        image = generic.get("image")
        if image is not None and generic.get("reference") is not None:
            image = [image, generic["reference"]]
        put("image", image)
        put("mask_image", generic.get("mask"))
        put("ip_adapter_image", generic.get("ip_adapter_image"))
        control = generic.get("control")
        if control is not None:  # ControlNet siblings: text-to-image ones take the map as `image`
            kwargs["control_image" if "control_image" in accepted else "image"] = control
            put("controlnet_conditioning_scale", generic.get("control_scale"))
            put("control_guidance_start", generic.get("control_start"))
            put("control_guidance_end", generic.get("control_end"))
            put("control_mode", generic.get("control_mode"))
        for name in ("width", "height", "strength", "max_area"):
            put(name, generic.get(name))
        put("num_frames", generic.get("frames"))
        put("frame_rate", generic.get("fps"))
        put("num_images_per_prompt", generic.get("count"))
        kwargs.update(self.entry.options.get("call", {}))
        return kwargs

    def _run(self, pipe, progress, seed: int, kwargs: dict, stage: str,
             ip_span: tuple[float, float, float] | None = None) -> list[Image.Image]:
        import torch

        accepted = _call_parameters(pipe)
        steps = int(kwargs.get("num_inference_steps") or 0)
        progress(0, steps, stage)

        wants_preview = getattr(progress, "wants_preview", None)

        def on_step_end(pipeline, step, timestep, tensors):
            total = getattr(pipeline, "num_timesteps", None) or steps
            progress(min(step + 1, total), total, stage)
            if ip_span is not None and total:
                pipeline.set_ip_adapter_scale(_ip_scale_at(ip_span, (step + 1) / total))
            if wants_preview is not None and step + 1 < total and wants_preview():
                started = time.monotonic()
                pixels = self.previewer.decode(pipeline, tensors.get("latents"), kwargs)
                if pixels is not None:
                    progress.preview(step + 1, pixels, time.monotonic() - started)
            return {}

        def legacy(step, timestep, latents):
            progress(step + 1, steps, stage)

        hooks: dict[str, Any] = {}
        if "callback_on_step_end" in accepted:
            hooks["callback_on_step_end"] = on_step_end
        elif "callback" in accepted:
            hooks.update(callback=legacy, callback_steps=1)
        generator = torch.Generator("cpu").manual_seed(seed)
        with torch.inference_mode():
            out = pipe(**kwargs, generator=generator, output_type="pil", **hooks)
        if hasattr(out, "frames"):
            return list(out.frames[0])
        return list(out.images)


def _ip_scale_at(span: tuple[float, float, float], done: float) -> float:
    """The IP-Adapter scale for the step that starts when `done` of the schedule is done: the
    item's strength inside its (start, end) share, 0 outside it."""
    scale, start, end = span
    return scale if start <= done < end else 0.0


def _adapters(pipe) -> set[str]:
    try:
        return {name for names in pipe.get_list_adapters().values() for name in names}
    except (AttributeError, ValueError):
        return set()


class Previewer:
    """Step previews: the current latents as a small RGB picture (longer side at most
    PREVIEW_SIDE pixels), made one of three ways, cheapest that fits first:

    - `options.preview_vae` in the catalog entry (a hub id such as madebyollin/taesd, taesdxl or
      taef1, or a local folder): that tiny autoencoder (diffusers' `AutoencoderTiny`), when it
      is downloaded;
    - 4-channel latents (Stable Diffusion 1.x/2.x, SDXL): a linear approximation, each latent
      pixel's RGB a fixed linear mix of its four channels (the published latent-to-RGB factors
      of those VAEs), upscaled; it costs next to nothing and shows colours and layout, not
      detail;
    - otherwise the pipeline's own VAE, on latents first scaled down so the decode stays small.

    Latents of a layout it does not know (video, packed latents of unknown size) give no
    previews; a decoder that fails once is not tried again for this model."""

    def __init__(self, entry: ModelEntry):
        self.entry = entry
        self._tiny = None  # the loaded AutoencoderTiny, or False when it cannot be had
        self._broken = False

    def decode(self, pipe, latents, kwargs: dict):
        """An H x W x 3 uint8 array, or None."""
        if latents is None or self._broken:
            return None
        try:
            return self._decode(pipe, latents, kwargs)
        except Exception:
            log.warning("model %s: step previews failed; none for this model from now on",
                        self.entry.id, exc_info=True)
            self._broken = True
            return None

    def _decode(self, pipe, latents, kwargs: dict):
        import torch
        import torch.nn.functional as F

        latents = latents[:1].detach()
        if latents.ndim == 3 and hasattr(pipe, "_unpack_latents"):  # FLUX-style packed 2x2
            latents = pipe._unpack_latents(
                latents, int(kwargs["height"]), int(kwargs["width"]), pipe.vae_scale_factor
            )
        if latents.ndim != 4:
            return None
        height, width = latents.shape[-2:]
        factor = int(getattr(pipe, "vae_scale_factor", 8) or 8)
        scale = min(1.0, PREVIEW_SIDE / float(max(height, width) * factor))
        out_size = (max(1, round(height * factor * scale)), max(1, round(width * factor * scale)))
        tiny = self._tiny_vae(latents.device)
        with torch.inference_mode():
            if tiny is None and latents.shape[1] == 4:
                weights = _LATENT_RGB["sdxl" if "XL" in type(pipe).__name__ else "sd"]
                mix = torch.tensor(weights, dtype=torch.float32, device=latents.device)
                rgb = torch.einsum("bchw,cr->brhw", latents.float(), mix)
                image = F.interpolate(rgb, size=out_size, mode="bilinear", align_corners=False)
            else:
                if scale < 1.0:
                    size = (max(1, round(height * scale)), max(1, round(width * scale)))
                    latents = F.interpolate(latents.float(), size=size, mode="area")
                if tiny is not None:
                    image = tiny.decode(latents.to(tiny.dtype)).sample
                else:
                    vae = pipe.vae
                    config = vae.config
                    latents = latents / getattr(config, "scaling_factor", 1.0)
                    if getattr(config, "shift_factor", None) is not None:
                        latents = latents + config.shift_factor
                    image = vae.decode(latents.to(vae.dtype), return_dict=False)[0]
            if tuple(image.shape[-2:]) != out_size:  # a decoder of another scale than the VAE
                image = F.interpolate(image.float(), size=out_size, mode="bilinear",
                                      align_corners=False)
        image = (image[0].float() / 2 + 0.5).clamp(0, 1)
        return (image.permute(1, 2, 0) * 255).round().to(torch.uint8).cpu().numpy()

    def _tiny_vae(self, device):
        ref = self.entry.options.get("preview_vae")
        if not ref or self._tiny is False:
            return None
        if self._tiny is None:
            try:
                from diffusers import AutoencoderTiny

                if Path(str(ref)).expanduser().is_dir():
                    tiny = AutoencoderTiny.from_pretrained(str(Path(ref).expanduser()))
                else:
                    tiny = AutoencoderTiny.from_pretrained(
                        ref, cache_dir=str(downloads.hub_cache()), local_files_only=True
                    )
                self._tiny = tiny.to(device).eval()
            except Exception as exc:  # not downloaded: the pipeline's own VAE does it
                log.info("model %s: preview decoder %s not available (%s); previews use the "
                         "model's VAE", self.entry.id, ref, exc)
                self._tiny = False
                return None
        return self._tiny


def _call_parameters(pipe) -> set[str]:
    return set(inspect.signature(type(pipe).__call__).parameters)


def task_of(pipeline_name: str) -> str:
    """text2image, image2image or inpaint, from a diffusers pipeline class name."""
    if "Inpaint" in pipeline_name or "Fill" in pipeline_name:
        return "inpaint"
    return "image2image" if "Img2Img" in pipeline_name else "text2image"


def denoising_schedule(steps: int | None, strength: float | None) -> int | None:
    """Pipeline steps so that `steps` denoising steps run at `strength`: image-to-image and
    inpainting pipelines run only the last `strength` share of their schedule, so the schedule
    is stretched (steps 2 at strength 0.5 schedules 4 and runs 2)."""
    if steps is None or strength is None or strength >= 1 or strength <= 0:
        return steps
    return math.ceil(steps / strength - 1e-9)


# --- pixels in and out --------------------------------------------------------------------------


def to_pil(pixels, size: tuple[int, int] | None = None, mode: str = "RGB"):
    """An RGBA (or single-channel) uint8 array as a PIL image, resized to `size` if given."""
    from PIL import Image

    image = Image.fromarray(pixels[..., :3] if pixels.ndim == 3 else pixels)
    image = image.convert(mode)
    if size is not None and image.size != tuple(size):
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def to_rgba(image, size: tuple[int, int], alpha=None):
    """A PIL image as an H x W x 4 uint8 array of `size`; alpha from `alpha` (or opaque)."""
    import numpy as np
    from PIL import Image

    if image.size != tuple(size):
        image = image.resize(size, Image.Resampling.LANCZOS)
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if alpha is None:
        alpha = np.full(rgb.shape[:2], 255, np.uint8)
    return np.dstack([rgb, alpha]).astype(np.uint8)
