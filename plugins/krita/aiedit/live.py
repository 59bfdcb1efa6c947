"""Live painting sessions (``/v1/live``): network only, no Qt widgets, no Krita calls.

The docker opens a session, sends the canvas as the user paints (at most one frame in flight;
the server answers ``409 superseded`` for a frame a newer one replaced) and shows each answer in
a preview layer. The shared client has no live calls yet: this goes through its request
plumbing (same authentication, same errors).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from . import aiedit_client as ac
from .aiedit_client import AieditError, Client, Mask, Pixels, Region


@dataclass
class Frame:
    """One rendered live frame: RGBA pixels at ``(x, y)`` in document pixels."""

    pixels: Pixels
    x: int
    y: int
    seed: int | None


class LiveSession:
    """One session on the server; ``frame`` blocks, so call it on a worker thread."""

    def __init__(self, client: Client, operation: str, model: str = "",
                 params: dict | None = None):
        body = {"operation": operation, "params": dict(params or {})}
        if model:
            body["model"] = model
        answer = client._json("POST", "/v1/live", json.dumps(body).encode(),
                              {"Content-Type": "application/json"})
        self.client = client
        self.id = answer["id"]
        self.operation = answer.get("operation", operation)
        self.model = answer.get("model", model)
        self.params = dict(answer.get("params") or {})

    def frame(self, image: Pixels, region: Region, mask: Mask | None = None,
              params: dict | None = None) -> Frame | None:
        """Render one frame; None when a newer frame superseded it."""
        request: dict = {"region": region.as_json(),
                         "raw": {"image": {"width": image.width, "height": image.height}}}
        files = [("image", image.data)]
        if mask is not None:
            files.append(("mask", mask.data))
            request["raw"]["mask"] = {"width": mask.width, "height": mask.height}
        if params:
            request["params"] = params
        body, content_type = ac._multipart([("request", json.dumps(request).encode())], files)
        headers = {"Content-Type": content_type, "Idempotency-Key": uuid.uuid4().hex}
        try:
            _, answer, data = self.client._request(
                "POST", f"/v1/live/{ac._quote(self.id)}/frames?format=rgba", body, headers)
        except AieditError as error:
            if error.code == "superseded":
                return None
            raise
        width = int(answer.get("X-Image-Width") or image.width)
        height = int(answer.get("X-Image-Height") or image.height)
        seed = answer.get("X-Seed")
        return Frame(Pixels(width, height, data), int(answer.get("X-Offset-X") or region.x),
                     int(answer.get("X-Offset-Y") or region.y),
                     int(seed) if seed not in (None, "") else None)

    def close(self) -> None:
        try:
            self.client._request("DELETE", f"/v1/live/{ac._quote(self.id)}")
        except AieditError:
            pass  # gone already (expired): nothing to end


def fingerprint(*parts) -> str:
    """A digest of a frame's inputs: an unchanged canvas (and params) is not sent again."""
    digest = hashlib.sha1()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True)
                      .encode())
    return digest.hexdigest()
