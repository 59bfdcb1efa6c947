"""One module per operation; importing this package registers them all."""

from aiedit.ops import edit, generate, inpaint, outpaint, restore, upscale, video  # noqa: F401
