"""Training's CPU threads: the cores this process may use (affinity, cgroup quota) less those others keep busy."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

PROC = Path("/proc")


def allowed_cores(proc: Path = PROC) -> float:
    """The cores this process may use: the fewest of the machine's, its affinity mask's and a CPU quota's (0.5, say)."""
    cores = float(os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        cores = min(cores, len(os.sched_getaffinity(0)))
    quota = cgroup_quota(proc)
    return cores if quota is None else min(cores, quota)


def cgroup_quota(proc: Path = PROC) -> float | None:
    """The tightest CPU quota on this process's cgroup and its ancestors (v2 or v1), in CPUs; None without one."""
    try:
        memberships, mounts = ((proc / "self" / name).read_text().splitlines() for name in ("cgroup", "mountinfo"))
    except OSError:
        return None
    quotas = []
    for line in memberships:
        _, controllers, path = line.split(":", 2)
        v2 = controllers == ""
        if not v2 and "cpu" not in controllers.split(","):
            continue
        mount, parts = _mount_point(mounts, v2), [p for p in path.split("/") if p]
        if mount is not None:
            found = (_read_quota(mount.joinpath(*parts[:depth]), v2) for depth in range(len(parts), -1, -1))
            quotas += [quota for quota in found if quota is not None]
    return min(quotas) if quotas else None


def _mount_point(mounts: list[str], v2: bool) -> Path | None:
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
            quota, period = ((folder / f"cpu.cfs_{name}_us").read_text().strip() for name in ("quota", "period"))
        return None if quota in ("max", "-1") or int(period) <= 0 else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def others_running(proc: Path = PROC, samples: int = 3, gap: float = 0.003) -> int | None:
    """Other processes' threads running or waiting for a core, the fewest of a few samples (None: cannot tell)."""
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
    """Training's CPU threads, set each epoch (other runs start and end): an OpenMP thread without a core stalls all."""

    def __init__(self, device: torch.device | str):
        self.on_cpu, self.before = torch.device(device).type == "cpu", torch.get_num_threads()
        self.cores = max(1, math.floor(allowed_cores()))

    def __enter__(self) -> CpuThreads:
        return self

    def epoch(self) -> None:
        if not self.on_cpu:
            return
        threads = max(1, min(self.before, self.cores - (others_running() or 0)))
        if threads != torch.get_num_threads():  # only on a change: setting it costs time even unchanged
            torch.set_num_threads(threads)

    def __exit__(self, *_) -> None:
        if torch.get_num_threads() != self.before:
            torch.set_num_threads(self.before)
