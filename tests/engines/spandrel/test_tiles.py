"""Tiling: the seams of a tiled run vanish, progress comes per tile, cancel stops at the next
tile, and running out of memory retries once with smaller tiles."""

from __future__ import annotations

import numpy as np
import pytest
import spandrel
import torch

from aiedit.engines.spandrel import SpandrelNet
from aiedit.imaging.tiles import OutOfMemory, run_tiled, run_tiled_retrying, spans
from tests.engines.spandrel.conftest import face_photo


@pytest.mark.parametrize("length,tile,overlap", [(1024, 512, 32), (100, 64, 16), (50, 64, 16),
                                                 (4096, 256, 32), (257, 128, 0)])
def test_spans_cover_the_axis_within_the_tile_size(length, tile, overlap):
    parts = spans(length, tile, overlap)
    assert parts[0][0] == 0 and parts[-1][1] == length
    assert all(end - start <= tile for start, end in parts)
    assert all(prev[1] - nxt[0] >= overlap for prev, nxt in zip(parts, parts[1:], strict=False))


def test_tiles_are_few_and_even():
    assert [e - s for s, e in spans(1024, 512, 32)] == [363, 363, 363]


@pytest.fixture(scope="module")
def compact_net(tiny_compact):
    descriptor = spandrel.ModelLoader().load_from_file(tiny_compact).eval()
    return SpandrelNet(descriptor, "cpu", torch.float32)


def test_tiled_result_matches_one_whole_image_call(compact_net):
    rgb = np.ascontiguousarray(face_photo(256)[40:140, 30:150, :3])
    whole = run_tiled(rgb, compact_net, 4, tile=1024, overlap=0, edge_pad=10)
    calls = []
    tiled = run_tiled(rgb, compact_net, 4, tile=64, overlap=24, edge_pad=10,
                      on_tile=lambda done, total: calls.append((done, total)))
    assert tiled.shape == whole.shape == (400, 480, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
    total = calls[0][1]
    assert total > 4 and calls == [(i, total) for i in range(total + 1)]


def test_stopping_in_the_progress_callback_stops_before_the_next_tile(compact_net):
    rgb = np.zeros((64, 64, 3), np.uint8)
    seen = []

    class Stop(Exception):
        pass

    def on_tile(done, total):
        if done == 2:
            raise Stop()

    def counting(x):
        seen.append(x.shape)
        return compact_net(x)

    with pytest.raises(Stop):
        run_tiled(rgb, counting, 4, tile=32, overlap=8, on_tile=on_tile)
    assert len(seen) == 2


class LimitedMemoryNet:
    """The tiny net, but tiles bigger than `limit` pixels a side 'run out of memory'."""

    def __init__(self, net, limit):
        self.net, self.limit, self.scale, self.released = net, limit, net.scale, 0
        self.edge_pad = net.edge_pad

    def __call__(self, x):
        if max(x.shape[:2]) > self.limit:
            raise OutOfMemory("CUDA out of memory (simulated)")
        return self.net(x)

    def release_memory(self):
        self.released += 1


def test_out_of_memory_retries_once_with_half_size_tiles(compact_net):
    rgb = np.ascontiguousarray(face_photo(128)[..., :3])
    limited = LimitedMemoryNet(compact_net, limit=64)
    out = run_tiled_retrying(rgb, limited, tile=128, overlap=16)
    expected = run_tiled_retrying(rgb, compact_net, tile=128, overlap=16)
    assert limited.released == 1
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_out_of_memory_twice_reports_the_tile_size_tried(compact_net):
    limited = LimitedMemoryNet(compact_net, limit=16)
    with pytest.raises(OutOfMemory) as caught:
        run_tiled_retrying(np.zeros((128, 128, 3), np.uint8), limited, tile=128, overlap=16)
    assert caught.value.tile == 64
