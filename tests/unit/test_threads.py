"""Thread counts for torch, OpenCV, OpenMP and waitress: chosen from cores and devices,
overridden by settings, applied in the worker threads, shown by `aiedit doctor`."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner

from aiedit.config import Config
from aiedit.engines import threads


@pytest.fixture
def cores(monkeypatch):
    def set_cores(n: int):
        monkeypatch.setattr(threads, "cpu_cores", lambda: n)

    return set_cores


def test_a_cpu_worker_gets_every_core_and_openmp_waits_briefly(cores):
    cores(6)
    chosen = threads.plan(Config(devices=["cpu"]), environ={})
    assert (chosen.torch, chosen.opencv) == (6, 6)
    assert chosen.omp_env == {"GOMP_SPINCOUNT": "10000", "KMP_BLOCKTIME": "1"}
    assert chosen.waitress == Config().request_threads >= 32


def test_gpu_workers_leave_cores_to_the_rest(cores):
    cores(16)
    chosen = threads.plan(Config(devices=["cuda:0", "cuda:1"]), environ={})
    assert chosen.torch == threads.GPU_ONLY_TORCH_THREADS
    assert not chosen.cpu_compute


def test_settings_and_the_environment_override_the_choice(cores):
    cores(8)
    config = Config(devices=["cpu"], torch_threads=3, opencv_threads=1, threads=12)
    chosen = threads.plan(config, environ={"OMP_WAIT_POLICY": "passive"})
    assert (chosen.torch, chosen.opencv, chosen.waitress) == (3, 1, 12)
    assert chosen.omp_env == {"OMP_WAIT_POLICY": "passive"}
    assert threads.plan(Config(devices=["cpu"]), environ={"OMP_NUM_THREADS": "5"}).torch == 5


def test_long_poll_limits_follow_the_request_threads():
    assert Config(threads=40).long_poll_limits[0] == 19
    assert Config().long_poll_limits[0] == Config().request_threads // 2 - 1


def test_the_plan_reaches_torch_and_opencv_through_the_environment():
    """A process prepared with the plan starts torch and OpenCV with its numbers."""
    script = (
        "from aiedit.config import Config\n"
        "from aiedit.engines import threads\n"
        "threads.prepare_process(threads.plan(Config(devices=['cpu'], torch_threads=1, "
        "opencv_threads=1), environ={}))\n"
        "import os, torch, cv2\n"
        "print(torch.get_num_threads(), cv2.getNumThreads(), os.environ['GOMP_SPINCOUNT'])\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM",
                        "GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1", "10000"]


def test_a_worker_thread_applies_the_plan_to_libraries_already_loaded():
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    wanted = 1 if before[0] != 1 else 2
    chosen = threads.ThreadPlan(
        cores=2, cpu_compute=True, torch=wanted, opencv=wanted, waitress=32, omp_env={},
        sources={},
    )
    seen = {}

    def worker():
        threads.apply_in_worker(chosen)
        seen["counts"] = torch.get_num_threads(), cv2.getNumThreads()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])
    assert seen["counts"] == (wanted, wanted)


def test_doctor_shows_the_thread_settings(monkeypatch, tmp_path):
    from aiedit.cli import main

    monkeypatch.setenv("AIEDIT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AIEDIT_TORCH_THREADS", "3")
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "torch intra-op threads: 3 (setting torch_threads)" in result.output
    assert "OpenCV threads:" in result.output
    assert "waitress request threads:" in result.output


def test_the_environment_carries_the_plan_and_keeps_given_openmp_waits(cores):
    cores(4)
    chosen = threads.plan(Config(devices=["cpu"]), environ={})
    env = threads.environment(chosen, environ={"GOMP_SPINCOUNT": "500"})
    assert env["GOMP_SPINCOUNT"] == "500"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "4"
    assert env["OPENCV_FOR_THREADS_NUM"] == "4"
