"""How many threads training uses on a CPU: as many as this process may really run, less the cores other processes
keep busy, read again every epoch.

PyTorch starts one thread per core the machine has. On a course server or in a container the process may run on
fewer: a CPU affinity mask, or a cgroup quota (JupyterHub's and Docker's ``--cpus``, Gradescope's half a CPU), while
``os.cpu_count()`` still sees every core of the host. OpenMP threads spin while they wait for each other, so a thread
without a core of its own stalls the rest: measured on 2 cores (benchmarks/busy_machine.py), three runs at once took
far longer with every thread each than with the machine's free cores.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

PROC = Path("/proc")


def allowed_cores(proc: Path = PROC) -> float:
    """The cores this process may use: the least of the machine's, its affinity mask's and any cgroup CPU quota on
    its cgroup or one above it (a quota may be a fraction: half a CPU is 0.5)."""
    cores = float(os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        cores = min(cores, len(os.sched_getaffinity(0)))
    quota = cgroup_quota(proc)
    return cores if quota is None else min(cores, quota)


def cgroup_quota(proc: Path = PROC) -> float | None:
    """The tightest CFS quota over this process's cgroup and its ancestors, in CPUs (cgroup v2's ``cpu.max``, v1's
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``); None without one, or where it cannot be read."""
    try:
        memberships = (proc / "self" / "cgroup").read_text().splitlines()
        mounts = (proc / "self" / "mountinfo").read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in memberships:
        _, controllers, path = line.split(":", 2)
        v2 = controllers == ""
        if not v2 and "cpu" not in controllers.split(","):
            continue
        mount = _mount_point(mounts, v2)
        if mount is None:
            continue
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):
            folder = mount.joinpath(*parts[:depth])
            quota = _read_quota(folder, v2)
            if quota is not None:
                quotas.append(quota)
    return min(quotas) if quotas else None


def _mount_point(mounts: list[str], v2: bool) -> Path | None:
    """Where the cgroup v2 hierarchy, or v1's cpu controller, is mounted (from /proc/self/mountinfo)."""
    for line in mounts:
        fields = line.split()
        separator = fields.index("-")
        fstype, options = fields[separator + 1], fields[separator + 3].split(",")
        if (v2 and fstype == "cgroup2") or (not v2 and fstype == "cgroup" and "cpu" in options):
            return Path(fields[4])
    return None


def _read_quota(folder: Path, v2: bool) -> float | None:
    try:
        if v2:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        else:
            quota = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        if quota in ("max", "-1") or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None


def others_running(proc: Path = PROC, samples: int = 3, gap: float = 0.003) -> int | None:
    """How many threads of other processes are running or waiting for a core now (None where it cannot tell): the
    fewest seen in a few samples ``gap`` seconds apart, so a process that wakes only briefly (the notebook server
    taking the log line just printed) is not counted; this process's own threads never are."""
    seen = []
    try:
        for i in range(samples):
            if i:
                time.sleep(gap)
            running = int((proc / "loadavg").read_text().split()[3].split("/")[0])
            tasks = (proc / "self" / "task").iterdir()
            ours = sum(1 for t in tasks if (t / "stat").read_text().rsplit(")", 1)[1].split()[0] == "R")
            seen.append(max(0, running - ours))
    except (OSError, ValueError, IndexError):
        return None
    return min(seen)


def cap() -> None:
    """Keep torch's threads within the cores this process may use (a grader's batch under a CPU quota)."""
    torch.set_num_threads(max(1, min(torch.get_num_threads(), math.floor(allowed_cores()))))


class CpuThreads:
    """Training's threads on the CPU, within the cores this process may use, set again before each epoch (other runs
    may have started or ended) and given back afterwards. On a GPU it leaves torch's threads alone."""

    def __init__(self, device: torch.device | str):
        self.on_cpu = torch.device(device).type == "cpu"
        self.before = torch.get_num_threads()
        self.cores = max(1, math.floor(allowed_cores()))

    def __enter__(self) -> CpuThreads:
        return self

    def epoch(self) -> None:
        """Set the threads for the next epoch: the usable cores less those other processes keep busy."""
        if not self.on_cpu:
            return
        others = others_running()
        threads = max(1, min(self.before, self.cores - (others or 0)))
        if threads != torch.get_num_threads():  # only on a change: setting it every epoch cost ~9% when quiet
            torch.set_num_threads(threads)

    def __exit__(self, *_) -> None:
        if torch.get_num_threads() != self.before:
            torch.set_num_threads(self.before)
