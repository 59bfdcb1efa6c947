"""Video: animate an image into a short clip."""

from __future__ import annotations

from marshmallow import Schema, validate

from aiedit.ops.base import (
    REQUIRED,
    Integer,
    OpContext,
    OperationError,
    guidance_field,
    negative_prompt_field,
    operation,
    prompt_field,
    seed_field,
    steps_field,
)


class VideoParams(Schema):
    prompt = prompt_field()
    negative_prompt = negative_prompt_field()
    frames = Integer(
        load_default=25,
        validate=validate.Range(2, 257),
        metadata={"description": "Number of frames"},
    )
    fps = Integer(
        load_default=24,
        validate=validate.Range(1, 60),
        metadata={"description": "Frames per second of the MP4"},
    )
    steps = steps_field()
    guidance = guidance_field()
    seed = seed_field()


MAX_FRAME_MULTIPLE = 8  # video VAEs want k * multiple + 1 frames (LTX: 8, Wan: 4)


def cost(params: dict, sizes: dict) -> float:
    """Frames asked for."""
    return float(params["frames"])


def most_frames(wanted: int) -> int:
    """The most frames a job asking for `wanted` can return: frame_count rounds to the nearest
    k * multiple + 1, never beyond the next one for the largest multiple."""
    return -(-(wanted - 1) // MAX_FRAME_MULTIPLE) * MAX_FRAME_MULTIPLE + 1


def check(params: dict, sizes: dict, config, entry, catalog) -> None:
    """The whole clip (every frame at the layer's size) must fit `max_output_pixels`."""
    width, height = sizes["image"]
    frames = most_frames(params["frames"])
    if frames * width * height > config.max_output_pixels:
        raise OperationError(
            "output_too_large",
            f"video: {params['frames']} frames (up to {frames} after rounding to what the "
            f"model needs) of {width}x{height} make {frames * width * height / 1e6:.0f} MP, over "
            f"this server's limit of {config.max_output_pixels / 1e6:.0f} MP for a job's "
            "output; ask for fewer frames or send a smaller layer",
        )


@operation(
    "video",
    version=1,
    title="Image to video",
    params=VideoParams,
    inputs={"image": REQUIRED},
    region="layer",
    validate=check,
    cost=cost,
)
def run(ctx: OpContext):
    """Animate the layer into a clip: one result per frame, then the MP4."""
    if ctx.model.engine != "diffusion":
        raise OperationError(
            "engine_unsupported",
            f"model {ctx.model.entry.id} cannot make video with this server version",
        )
    return _diffusion(ctx)


def frame_count(wanted: int, multiple: int) -> int:
    """The nearest count of the form k * multiple + 1 (what video VAEs need), k >= 1."""
    return max(1, round((wanted - 1) / multiple)) * multiple + 1


def _diffusion(ctx: OpContext):
    import numpy as np

    from aiedit.engines.diffusion import to_pil, to_rgba
    from aiedit.ops.base import ImageOutput, VideoOutput

    p, model = ctx.params, ctx.model.obj
    image = np.asarray(ctx.inputs["image"])
    height, width = image.shape[:2]
    work = model.fit(width, height)
    frames = frame_count(p["frames"], model.frame_multiple)
    result = model(
        ctx.progress,
        seed=p["seed"],
        stage="denoising",
        prompt=p["prompt"],
        negative_prompt=p["negative_prompt"],
        steps=p["steps"],
        guidance=p["guidance"],
        image=to_pil(image, work),
        width=work[0],
        height=work[1],
        frames=frames,
        fps=p["fps"],
    )
    generated = result.images
    count = len(generated)
    store = frame_file(ctx.scratch_dir, count, height, width)
    with Mp4Writer(ctx.scratch_dir, (width, height), p["fps"]) as mp4:
        for i in range(count):  # each full-size frame goes to disk and to ffmpeg as it is made
            ctx.progress(i, count, "encoding video")
            store[i] = to_rgba(generated[i], (width, height))
            generated[i] = None
            mp4.send(store[i])
        ctx.progress(count, count, "encoding video")
    outputs: list = [ImageOutput(store[i], seed=result.seed) for i in range(count)]
    outputs.append(
        VideoOutput(
            mp4.data,
            width=mp4.size[0],
            height=mp4.size[1],
            fps=float(p["fps"]),
            frames=count,
            seed=result.seed,
        )
    )
    return outputs


def frame_file(folder, count: int, height: int, width: int):
    """A count x height x width x 4 uint8 array backed by a file in `folder` (the system's
    temporary folder if None), so a long clip's full-size frames live on disk, not in memory.
    The file is unlinked at once: it goes away with the array, even if the server dies."""
    import os
    import tempfile

    import numpy as np

    fd, path = tempfile.mkstemp(prefix=".tmp-frames-", dir=folder)
    try:
        with os.fdopen(fd, "w+b") as fh:
            fh.truncate(count * height * width * 4)
            frames = np.memmap(fh, np.uint8, "r+", shape=(count, height, width, 4))
    finally:
        try:
            os.unlink(path)
        except OSError:  # Windows keeps an open file: it goes with the temporary folder
            pass
    return frames


class Mp4Writer:
    """H.264 MP4 via ffmpeg, fed one RGBA frame at a time (yuv420p needs even sides: an odd last
    row or column is dropped). After the `with` block, `data` holds the file's bytes."""

    def __init__(self, folder, size: tuple[int, int], fps: int):
        self.size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
        self.folder = folder
        self.fps = fps
        self.data = b""

    def __enter__(self):
        import os
        import tempfile

        import imageio_ffmpeg

        fd, self._path = tempfile.mkstemp(prefix=".tmp-video-", suffix=".mp4", dir=self.folder)
        os.close(fd)
        self._writer = imageio_ffmpeg.write_frames(
            self._path,
            self.size,
            fps=self.fps,
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            macro_block_size=1,
            quality=None,
            output_params=["-crf", "18"],
        )
        self._writer.send(None)
        return self

    def send(self, frame) -> None:
        import numpy as np

        even_w, even_h = self.size
        self._writer.send(np.ascontiguousarray(frame[:even_h, :even_w, :3]))

    def __exit__(self, kind, error, trace):
        import os

        try:
            self._writer.close()
            if kind is None:
                with open(self._path, "rb") as fh:
                    self.data = fh.read()
        finally:
            os.unlink(self._path)
        return False


def encode_mp4(frames, fps: int) -> tuple[bytes, tuple[int, int]]:
    """The MP4 of a list of RGBA frames, and its size."""
    height, width = frames[0].shape[:2]
    with Mp4Writer(None, (width, height), fps) as mp4:
        for frame in frames:
            mp4.send(frame)
    return mp4.data, mp4.size
