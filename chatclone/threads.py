"""How many CPU threads torch computes with, and how its OpenMP threads wait: chosen so that a busy machine
slows a run down in proportion, instead of ten times over.

torch's CPU ops run on an OpenMP thread pool, one thread per core by default, and every parallel op ends at a
barrier where the finished threads wait for the last one. When another process takes a core, one of torch's
threads is descheduled for whole time slices and every op waits for it; meanwhile the waiting threads spin (the
GNU runtime's default spins ~300,000 times before sleeping), taking CPU from that very thread. On the 2-core
reference machine, beside one busy process, a LoRA step and greedy decoding ran about ten times slower with the
defaults than with one thread.

`apply(setting, free_cores)`, called by `chatclone.cli.run_stage` before the stage (and torch) is imported:
- threads: `auto` = the cores this process may use (its CPU affinity, capped by a cgroup CPU quota) minus the
  cores other processes keep busy (sampled for SAMPLE_SECONDS with psutil) and minus `free_cores` (serve.py keeps
  one for its event loop and scheduler: with 2 cores, torch on both made each streamed token wait for them), at
  least 1; an integer forces that count. With `auto`, an OMP_NUM_THREADS in the environment (yours, or
  torchrun's) wins: torch's own count stands.
- waiting: GOMP_SPINCOUNT=10000 (torch ships GNU libgomp, whose threads spin ~300,000 times at a barrier before
  they sleep): a thread waiting for a descheduled one soon sleeps and gives the core back. Measured with
  benchmarks/bench_contention.py: OMP_WAIT_POLICY=PASSIVE (sleep at once) cost ~45 % of decoding tokens/s on an
  idle machine, where barriers are many and short; 10,000 spins cost nothing measurable there. It matters when
  load arrives after the count was chosen. The runtime reads it once, when torch loads it, so it is set only
  before that; an OMP_WAIT_POLICY, GOMP_SPINCOUNT or KMP_BLOCKTIME in the environment is yours and wins.
`applied()` is what was decided, recorded in each run's manifest.json ("threads"); nothing is printed, so a run
refused for bad input still prints only its one error line.

The key's schema is chatclone/config/threads.py; this module imports nothing of chatclone's but the errors, so
the config schemas and the run records (chatclone/runs.py) may use it.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from chatclone.config.threads import parse_free_cores, parse_threads

log = logging.getLogger(__name__)

COUNT_ENV = "OMP_NUM_THREADS"
WAIT_ENV = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")  # any of them set: the user chose how to wait
WAIT_POLICY = {"GOMP_SPINCOUNT": "10000"}
SAMPLE_SECONDS = 0.3
OPENMP_LIBRARIES = ("libgomp", "libiomp5", "libomp")
_applied: dict | None = None
_policy_set_here = False


def auto_threads(cores: int, busy: float, free: int = 0) -> int:
    """`auto`: the usable cores minus the ones other processes keep busy (a core counts from half busy) and minus
    `free` (left to this process's other threads), >= 1."""
    return max(1, cores - free - math.floor(min(max(busy, 0.0), cores) + 0.5))


def decide(setting: str, environ: Mapping[str, str], cores: int, busy: Callable[[], float], free: int = 0) -> dict:
    """What `setting` (`auto` or an integer) means here: {"count": int or None (torch's own), "source", ...}.
    `busy()` measures the cores other processes keep busy; it is called only when `auto` decides; `free` cores
    are left to the process's other threads (serve.py's event loop and scheduler)."""
    forced = parse_threads(setting)
    if forced is not None:
        return {"setting": str(setting), "count": forced, "source": f"threads={forced}", "usable_cores": cores}
    if environ.get(COUNT_ENV, "").strip():
        return {
            "setting": str(setting),
            "count": None,
            "usable_cores": cores,
            "source": f"{COUNT_ENV}={environ[COUNT_ENV]} in the environment (it wins over auto)",
        }
    measured = busy()
    kept = f", {free} left to this process's other threads" if free else ""
    return {
        "setting": str(setting),
        "count": auto_threads(cores, measured, free),
        "usable_cores": cores,
        "busy_cores": round(measured, 2),
        "source": f"auto: {cores} usable core(s), {measured:.2f} kept busy by other processes{kept}",
    }


def wait_policy(environ: Mapping[str, str], openmp_loaded: bool) -> tuple[dict[str, str], str]:
    """(variables to set, why): WAIT_POLICY unless the environment chose, or the runtime has read it already."""
    mine = {k: environ[k] for k in WAIT_ENV if k in environ}
    if mine and not _policy_set_here:
        return {}, "environment: " + ", ".join(f"{k}={v}" for k, v in mine.items())
    if mine:
        return {}, "chatclone: " + ", ".join(f"{k}={v}" for k, v in mine.items())
    if openmp_loaded:
        return {}, "the runtime's default: OpenMP was loaded before chatclone could set it"
    return dict(WAIT_POLICY), "chatclone: " + ", ".join(f"{k}={v}" for k, v in WAIT_POLICY.items())


def apply(setting: str, free_cores: int = 0) -> dict:
    """Set the wait policy (before torch loads OpenMP) and torch's thread count; returns and keeps the record."""
    global _applied, _policy_set_here
    parse_threads(setting)  # a bad value fails before anything is measured or loaded
    free = parse_free_cores(free_cores)
    cpus = usable_cpus()
    decision = decide(setting, os.environ, len(cpus), lambda: busy_cores(cpus), free)
    variables, why = wait_policy(os.environ, openmp_loaded())
    os.environ.update(variables)
    _policy_set_here = _policy_set_here or bool(variables)
    import torch

    if decision["count"] is not None:
        torch.set_num_threads(decision["count"])
    decision.update(count=torch.get_num_threads(), wait_policy=why, openmp=openmp_runtime())
    log.debug("torch CPU threads: %d (%s); OpenMP waiting: %s", decision["count"], decision["source"], why)
    _applied = decision
    return decision


def applied() -> dict | None:
    """The last `apply` in this process (None: none ran, e.g. a stage called directly from Python)."""
    return dict(_applied) if _applied is not None else None


def usable_cpus() -> list[int]:
    """The CPUs this process may run on, cut to a cgroup CPU quota (a container's --cpus) when there is one."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = list(range(os.cpu_count() or 1))
    quota = _cgroup_quota()
    return cpus[: max(1, math.ceil(quota))] if quota is not None and quota < len(cpus) else cpus


def _cgroup_quota() -> float | None:
    """CPUs' worth of the cgroup's CPU quota (v2 cpu.max, v1 cfs_quota_us), None without one."""
    try:
        v2 = Path("/sys/fs/cgroup/cpu.max")
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = Path("/sys/fs/cgroup/cpu")
        quota = int((v1 / "cpu.cfs_quota_us").read_text())
        return None if quota <= 0 else quota / int((v1 / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None


def busy_cores(cpus: list[int], seconds: float = SAMPLE_SECONDS) -> float:
    """Cores' worth of CPU time that other processes used on `cpus` over `seconds` (this process's own left out)."""
    import psutil

    me = psutil.Process()
    psutil.cpu_percent(percpu=True)  # starts the interval
    own, started = sum(me.cpu_times()[:2]), time.monotonic()
    time.sleep(seconds)
    percents = psutil.cpu_percent(percpu=True)
    own, elapsed = sum(me.cpu_times()[:2]) - own, time.monotonic() - started
    total = sum(percents[i] for i in cpus if i < len(percents)) / 100
    return max(0.0, total - own / max(elapsed, 1e-6))


def openmp_runtime() -> str | None:
    """Which OpenMP runtime this process has loaded (libgomp, libiomp5, libomp), from /proc/self/maps."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    return next((name for name in OPENMP_LIBRARIES if f"/{name}" in maps or f"/{name}." in maps), None)


def openmp_loaded() -> bool:
    """True once an OpenMP runtime has read its environment (torch imported, or one mapped into the process)."""
    return "torch" in sys.modules or openmp_runtime() is not None
