"""One module per operation; importing this package registers them all."""

from aiedit.ops import (  # noqa: F401
    edit,
    generate,
    inpaint,
    outpaint,
    preprocess,
    restore,
    upscale,
    video,
)
