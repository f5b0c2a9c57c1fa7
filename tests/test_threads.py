"""CPU threads from the real limit: the affinity mask, the cgroup quota (v1 and v2, here or in a parent cgroup) and
the cores other processes keep busy; and a real cgroup where the test can make one."""

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch

from labkit import threads

V1_CPU = Path("/sys/fs/cgroup/cpu")


def fake_proc(tmp_path: Path, cgroup: str, mountinfo: str) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(cgroup)
    (proc / "self" / "mountinfo").write_text(mountinfo)
    return proc


def test_a_v2_quota_on_the_cgroup_or_a_parent_is_read_in_cpus(tmp_path):
    root = tmp_path / "cg"
    (root / "kubepods" / "pod1").mkdir(parents=True)
    (root / "kubepods" / "cpu.max").write_text("150000 100000\n")  # the pod's parent: 1.5 CPUs
    (root / "kubepods" / "pod1" / "cpu.max").write_text("max 100000\n")  # the container itself: no limit
    proc = fake_proc(tmp_path, "0::/kubepods/pod1\n", f"30 23 0:26 / {root} rw - cgroup2 cgroup2 rw\n")
    assert threads.cgroup_quota(proc) == 1.5


def test_a_v1_cfs_quota_is_read_from_the_cpu_controllers_mount(tmp_path):
    cpu = tmp_path / "cpu"
    (cpu / "lab").mkdir(parents=True)
    (cpu / "lab" / "cpu.cfs_quota_us").write_text("50000\n")
    (cpu / "lab" / "cpu.cfs_period_us").write_text("100000\n")
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    mounts = f"32 31 0:29 / {cpu} rw - cgroup cgroup rw,cpu\n35 31 0:32 / /x rw - cgroup cgroup rw,memory\n"
    proc = fake_proc(tmp_path, "4:memory:/other\n1:cpu:/lab\n", mounts)
    assert threads.cgroup_quota(proc) == 0.5


def test_no_quota_or_nothing_readable_means_no_limit(tmp_path):
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_quota(fake_proc(tmp_path, "0::/\n", f"1 1 0:1 / {root} rw - cgroup2 cgroup2 rw\n")) is None
    assert threads.cgroup_quota(tmp_path / "nowhere") is None


def test_the_allowed_cores_are_the_least_of_the_machine_the_mask_and_the_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 32)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "cgroup_quota", lambda proc=None: None)
    assert threads.allowed_cores() == 4
    monkeypatch.setattr(threads, "cgroup_quota", lambda proc=None: 0.5)
    assert threads.allowed_cores() == 0.5


def test_each_epoch_trains_on_the_allowed_cores_less_the_busy_ones_and_restores_torchs(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "allowed_cores", lambda: 0.5)  # Gradescope's half a CPU
    monkeypatch.setattr(threads, "others_running", lambda: 0)
    with threads.CpuThreads("cpu") as cpu:
        cpu.epoch()
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def can_make_a_cgroup() -> bool:
    return os.name == "posix" and os.geteuid() == 0 and (V1_CPU / "cpu.cfs_quota_us").is_file()


@pytest.mark.skipif(not can_make_a_cgroup(), reason="needs root and cgroup v1's cpu controller at /sys/fs/cgroup/cpu")
def test_inside_a_real_one_cpu_cgroup_training_uses_one_thread():
    group = V1_CPU / f"labkit-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text("100000")
        script = textwrap.dedent(f"""
            import os, torch
            open("{group}/tasks", "w").write(str(os.getpid()))
            from labkit import threads
            with threads.CpuThreads("cpu") as cpu:
                cpu.epoch()
                print(threads.allowed_cores(), torch.get_num_threads())
        """)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
        assert float(out[0]) <= 1 and out[1] == "1"
    finally:
        group.rmdir()
