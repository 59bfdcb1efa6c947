"""Style presets: a prompt template, a negative prompt, LoRAs, default params and optionally a
model, under one name a request can give (`"style": "cinematic"`). Built-in ones come from
`styles.toml`; a user file (setting `styles_file`, AIEDIT_STYLES_FILE) adds styles or replaces
built-in ones with the same id.

    [[style]]
    id = "pixel-art"
    name = "Pixel art"
    model = "sdxl-base"                       # optional: used when the request names none
    prompt = "pixel art, {prompt}, 16-bit sprite"
    negative_prompt = "blurry, photo"
    loras = [{ id = "lora-pixel-art-xl", weight = 1.0 }]
    params = { guidance = 6.0 }
    operations = ["generate", "inpaint"]      # the default
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_OPERATIONS = ("generate", "inpaint")
KEYS = {"id", "name", "description", "model", "prompt", "negative_prompt", "loras", "params",
        "operations"}


class StyleError(ValueError):
    pass


@dataclass(frozen=True)
class Style:
    id: str
    name: str
    prompt: str = "{prompt}"
    negative_prompt: str = ""
    model: str | None = None
    loras: tuple[dict, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    operations: tuple[str, ...] = DEFAULT_OPERATIONS
    description: str = ""

    def describe(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "model": self.model,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "loras": [dict(lora) for lora in self.loras],
            "params": dict(self.params),
            "operations": list(self.operations),
        }

    def apply(self, params: dict) -> dict:
        """The request's params with this style: its defaults under them, the prompt put into
        the template, negative prompts joined, its LoRAs before the request's own (a LoRA the
        request names keeps the request's weight)."""
        out = {**self.params, **params}
        prompt = params.get("prompt", "")
        if isinstance(prompt, str):
            out["prompt"] = self.prompt.replace("{prompt}", prompt).strip(" ,")
        negative = params.get("negative_prompt", "")
        if self.negative_prompt and isinstance(negative, str):
            out["negative_prompt"] = ", ".join(p for p in (self.negative_prompt, negative) if p)
        own = params.get("loras", [])
        if self.loras and isinstance(own, list):
            named = {item.get("id") for item in own if isinstance(item, dict)}
            out["loras"] = [dict(lora) for lora in self.loras if lora["id"] not in named] + own
        return out


class StyleBook:
    def __init__(self, styles: list[Style]):
        self._styles = {s.id: s for s in styles}

    @classmethod
    def load(cls, user_file: str | Path | None = None) -> StyleBook:
        text = resources.files("aiedit").joinpath("styles.toml").read_text("utf-8")
        styles = {s.id: s for s in _parse(tomllib.loads(text), "styles.toml")}
        if user_file:
            path = Path(user_file).expanduser()
            try:
                with open(path, "rb") as fh:
                    doc = tomllib.load(fh)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise StyleError(f"styles file {path}: {exc}") from None
            for style in _parse(doc, str(path)):
                styles[style.id] = style
        return cls(list(styles.values()))

    def get(self, style_id: str) -> Style | None:
        return self._styles.get(style_id)

    def __iter__(self):
        return iter(self._styles.values())


def _parse(doc: dict, origin: str) -> list[Style]:
    styles = []
    for raw in doc.get("style", []):
        where = f"{origin}: style {raw.get('id', '?')!r}"
        unknown = set(raw) - KEYS
        if unknown:
            raise StyleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if not isinstance(raw.get("id"), str) or not raw["id"]:
            raise StyleError(f"{origin}: a style lacks its `id`")
        prompt = raw.get("prompt", "{prompt}")
        if "{prompt}" not in prompt:
            raise StyleError(f"{where}: `prompt` must contain {{prompt}} (the user's words)")
        loras = raw.get("loras", [])
        if not all(isinstance(lora, dict) and isinstance(lora.get("id"), str) for lora in loras):
            raise StyleError(f"{where}: `loras` items are {{ id = \"...\", weight = 1.0 }}")
        styles.append(Style(
            id=raw["id"],
            name=raw.get("name", raw["id"]),
            prompt=prompt,
            negative_prompt=raw.get("negative_prompt", ""),
            model=raw.get("model"),
            loras=tuple(dict(lora) for lora in loras),
            params=dict(raw.get("params", {})),
            operations=tuple(raw.get("operations", DEFAULT_OPERATIONS)),
            description=raw.get("description", ""),
        ))
    return styles
