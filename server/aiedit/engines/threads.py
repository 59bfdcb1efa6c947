"""How many threads the server's parts use, chosen from the cores and the devices.

On a machine with few cores the parts compete for them: torch's intra-op team (OpenMP), OpenCV's
pool, waitress' request threads, the database writes of the worker, and the client on the same
machine. A profile of `aiedit serve` running warm jobs (issue 15) found the worker thread in
libgomp's barrier for about half of its samples: GNU OpenMP lets a team thread that waits spin for
about 3 ms (GOMP_SPINCOUNT 300000) before it sleeps, as long as it manages no more threads than
there are cores, so the two torch threads kept both cores of a 2-core machine busy while the
request threads, the client and the progress writes waited for them, and every preemption of a
team member left the other spinning. The server therefore lets OpenMP threads spin only briefly
(about 0.1 ms, enough to catch the next kernel of the same step) before they give up the core.

- torch intra-op threads: the cores when a worker computes on the CPU; with GPU workers only,
  at most 4 (the CPU side of a GPU job is light and should leave cores to the rest).
- OpenCV threads: the cores (classic operations have a worker lane of their own).
- waitress request threads: `Config.request_threads` (most of them wait in long-polls).
- OpenMP wait: GOMP_SPINCOUNT (GNU OpenMP, PyTorch's wheels) and KMP_BLOCKTIME (Intel OpenMP).

Settings override the choice: `torch_threads` (AIEDIT_TORCH_THREADS), `opencv_threads`
(AIEDIT_OPENCV_THREADS), `threads` (AIEDIT_THREADS); OMP_NUM_THREADS, GOMP_SPINCOUNT,
OMP_WAIT_POLICY and KMP_BLOCKTIME already in the environment are kept. The numbers reach torch and
OpenCV through their environment variables, set before either is imported (`aiedit serve` does it
first thing), and are checked again in each worker thread before a job (`apply_in_worker`)."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass

from aiedit.config import Config

OMP_SPINCOUNT = "10000"  # about 0.1 ms of spinning (libgomp counts ~100000 spins per ms)
KMP_BLOCKTIME_MS = "1"
GPU_ONLY_TORCH_THREADS = 4

_applied = threading.local()


@dataclass(frozen=True)
class ThreadPlan:
    cores: int
    cpu_compute: bool  # a worker runs models on the CPU
    torch: int
    opencv: int
    waitress: int
    omp_env: dict[str, str]  # OpenMP wait settings for the process
    sources: dict[str, str]  # where each number came from

    def describe(self) -> list[str]:
        devices = "a CPU worker" if self.cpu_compute else "GPU workers only"
        waits = ", ".join(f"{k}={v}" for k, v in self.omp_env.items())
        return [
            f"cores: {self.cores} ({devices})",
            f"torch intra-op threads: {self.torch} ({self.sources['torch']})",
            f"OpenCV threads: {self.opencv} ({self.sources['opencv']})",
            f"waitress request threads: {self.waitress} ({self.sources['waitress']})",
            f"OpenMP waits: {waits} ({self.sources['omp']})",
        ]


def cpu_cores() -> int:
    """Physical cores this process may run on (hyper-threads do not add compute to torch)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return max(1, min(usable, _physical_cores() or usable))


def _physical_cores() -> int | None:
    """Distinct (package, core) pairs in /proc/cpuinfo; psutil elsewhere (its import costs
    start-up time on Linux, where the file says the same)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        try:
            import psutil
        except ImportError:
            return None
        return psutil.cpu_count(logical=False)
    cores, package = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            package = value.strip()
        elif key == "core id":
            cores.add((package, value.strip()))
    return len(cores) or None


def computes_on_cpu(devices: list[str]) -> bool:
    """Whether some worker runs models on the CPU ('auto' does when no GPU is present)."""
    from aiedit.engines import accelerator_present

    devices = devices or ["auto"]
    return any(d == "cpu" or (d == "auto" and not accelerator_present()) for d in devices)


def plan(config: Config, environ=None) -> ThreadPlan:
    environ = os.environ if environ is None else environ
    cores = cpu_cores()
    cpu = computes_on_cpu(config.devices)
    sources = {}
    if config.torch_threads > 0:
        torch, sources["torch"] = config.torch_threads, "setting torch_threads"
    elif _positive(environ.get("OMP_NUM_THREADS")):
        torch, sources["torch"] = int(environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    elif cpu:
        torch, sources["torch"] = cores, "auto: the cores"
    else:
        torch = min(cores, GPU_ONLY_TORCH_THREADS)
        sources["torch"] = f"auto: GPU workers, at most {GPU_ONLY_TORCH_THREADS}"
    if config.opencv_threads > 0:
        opencv, sources["opencv"] = config.opencv_threads, "setting opencv_threads"
    else:
        opencv, sources["opencv"] = cores, "auto: the cores"
    sources["waitress"] = "setting threads" if config.threads > 0 else "auto: 8 per core, >= 32"
    omp_env = {"GOMP_SPINCOUNT": OMP_SPINCOUNT, "KMP_BLOCKTIME": KMP_BLOCKTIME_MS}
    given = {k: environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
             if environ.get(k)}
    if given:
        omp_env, sources["omp"] = given, "from the environment"
    else:
        sources["omp"] = "auto: spin about 0.1 ms, then sleep"
    return ThreadPlan(cores, cpu, torch, opencv, config.request_threads, omp_env, sources)


def environment(chosen: ThreadPlan, environ=None) -> dict[str, str]:
    """The environment variables that carry the plan (OpenMP wait settings already in
    `environ` are kept)."""
    environ = os.environ if environ is None else environ
    values = {name: environ.get(name) or value for name, value in chosen.omp_env.items()}
    values["OMP_NUM_THREADS"] = values["MKL_NUM_THREADS"] = str(chosen.torch)
    values["OPENCV_FOR_THREADS_NUM"] = str(chosen.opencv)
    return values


def prepare_process(chosen: ThreadPlan) -> None:
    """Put the plan where torch, OpenMP and OpenCV read it when they load. Call before anything
    imports them; later changes to these variables are not seen by an OpenMP already loaded."""
    os.environ.update(environment(chosen))


def apply_in_worker(chosen: ThreadPlan) -> None:
    """In a worker thread, before a job: torch's and OpenCV's thread counts as planned (torch
    keeps some of them per thread, and a library imported before `prepare_process` ignored the
    environment). Cheap after the first call in a thread; imports neither library itself."""
    torch = sys.modules.get("torch")
    cv2 = sys.modules.get("cv2")
    if getattr(_applied, "torch", False) is False and torch is not None:
        if torch.get_num_threads() != chosen.torch:
            torch.set_num_threads(chosen.torch)
        _applied.torch = True
    if getattr(_applied, "cv2", False) is False and cv2 is not None:
        if cv2.getNumThreads() != chosen.opencv:
            cv2.setNumThreads(chosen.opencv)
        _applied.cv2 = True


def _positive(value: str | None) -> bool:
    return bool(value) and value.isdigit() and int(value) > 0
