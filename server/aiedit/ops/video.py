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


def cost(params: dict, sizes: dict) -> float:
    return float(params["frames"])


@operation(
    "video",
    version=1,
    title="Image to video",
    params=VideoParams,
    inputs={"image": REQUIRED},
    region="layer",
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
    pixels = [to_rgba(frame, (width, height)) for frame in result.images]
    ctx.progress(0, 1, "encoding video")
    mp4, size = encode_mp4(pixels, p["fps"])
    outputs = [ImageOutput(frame, seed=result.seed) for frame in pixels]
    outputs.append(
        VideoOutput(
            mp4,
            width=size[0],
            height=size[1],
            fps=float(p["fps"]),
            frames=len(pixels),
            seed=result.seed,
        )
    )
    return outputs


def encode_mp4(frames, fps: int) -> tuple[bytes, tuple[int, int]]:
    """H.264 MP4 via ffmpeg (yuv420p needs even sides: an odd last row or column is dropped)."""
    import os
    import tempfile

    import imageio_ffmpeg
    import numpy as np

    height, width = frames[0].shape[:2]
    even_w, even_h = width - width % 2, height - height % 2
    fd, path = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    try:
        writer = imageio_ffmpeg.write_frames(
            path,
            (even_w, even_h),
            fps=fps,
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            macro_block_size=1,
            quality=None,
            output_params=["-crf", "18"],
        )
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame[:even_h, :even_w, :3]))
        writer.close()
        with open(path, "rb") as fh:
            return fh.read(), (even_w, even_h)
    finally:
        os.unlink(path)
