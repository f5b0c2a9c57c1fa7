"""Writing a file so that nothing is lost: whole or not at all, the old file kept in place until replaced, races
between processes, and the remains of killed writes (a temp file, a lock) cleared without blocking."""

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import labkit.handin.safe_write as safe_write_module
from labkit.checkpoint import KEYS, VERSION, load_checkpoint, save_checkpoint
from labkit.errors import LabError


def fake_checkpoint(fingerprint: str) -> dict:
    """A small checkpoint of the documented shape, told apart by its run fingerprint."""
    return {key: None for key in KEYS} | {
        "format": "labkit-checkpoint",
        "version": VERSION,
        "model_state": {"w": torch.zeros(2)},
        "model_config": {"kind": "vit"},
        "preset": "fast",
        "student_id": "s1",
        "classes": ["a", "b"],
        "run_fingerprint": fingerprint,
    }


def fingerprints(folder: Path) -> list[str]:
    return sorted(load_checkpoint(p)["run_fingerprint"] for p in folder.glob("*.pth"))


RACER = textwrap.dedent("""
    import sys, torch
    from labkit.checkpoint import KEYS, VERSION, save_checkpoint
    path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for i in range(n):
        ckpt = {key: None for key in KEYS} | {"format": "labkit-checkpoint", "version": VERSION,
                "model_state": {"w": torch.zeros(2)}, "model_config": {"kind": "vit"}, "preset": "fast",
                "student_id": "s1", "classes": ["a", "b"], "run_fingerprint": f"{who}-{i}"}
        save_checkpoint(ckpt, path, out=open("/dev/null", "w"))
""")


@pytest.mark.hostile
def test_two_processes_saving_to_one_name_lose_nothing(tmp_path):
    """Two runs with different settings save to the same file at once, over an older file: every checkpoint
    survives, one under the lab's name and the others under timestamped names (bounded: 2 x 6 saves)."""
    path = tmp_path / "s1_vit.pth"
    save_checkpoint(fake_checkpoint("older"), path, out=io.StringIO())
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    racers = [
        subprocess.Popen([sys.executable, str(script), str(path), who, "6"], stderr=subprocess.PIPE, text=True)
        for who in ("seed0", "seed1")
    ]
    for racer in racers:
        assert racer.wait(timeout=120) == 0, racer.stderr.read()
    expected = sorted(["older"] + [f"seed{s}-{i}" for s in (0, 1) for i in range(6)])
    assert fingerprints(tmp_path) == expected
    assert not list(tmp_path.glob(".*")), "no lock or temp file is left behind"


@pytest.mark.hostile
def test_the_old_file_stays_in_place_until_the_new_one_replaces_it(tmp_path, monkeypatch):
    path = tmp_path / "s1_vit.pth"
    save_checkpoint(fake_checkpoint("old"), path, out=io.StringIO())
    real_replace = os.replace
    seen = []

    def replace(src, dst):
        seen.append((Path(dst).exists(), len(list(tmp_path.glob("*.pth")))))
        real_replace(src, dst)

    monkeypatch.setattr(safe_write_module.os, "replace", replace)
    save_checkpoint(fake_checkpoint("new"), path, out=io.StringIO())
    assert seen == [(True, 2)], "the old run was kept aside by a copy, the lab's name never went missing"
    assert fingerprints(tmp_path) == ["new", "old"] and load_checkpoint(path)["run_fingerprint"] == "new"


@pytest.mark.hostile
def test_a_crash_while_saving_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "alice_vit.pth"
    checkpoint = fake_checkpoint("run")
    save_checkpoint(checkpoint, path, out=io.StringIO())
    before = path.read_bytes()

    def crash(obj, f):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(checkpoint, path, out=io.StringIO())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["alice_vit.pth"]


@pytest.mark.hostile
def test_temp_files_of_killed_saves_are_removed_and_live_ones_kept(tmp_path):
    path = tmp_path / "s1_vit.pth"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = tmp_path / f".s1_vit.pth.{dead.pid}.abc123.tmp"  # a save killed mid-write: its process is gone
    killed.write_bytes(b"half a checkpoint")
    running = tmp_path / f".s1_vit.pth.{os.getpid()}.def456.tmp"  # a save still running in this process
    running.write_bytes(b"being written")
    save_checkpoint(fake_checkpoint("new"), path, out=io.StringIO())
    assert not killed.exists() and running.exists()


@pytest.mark.hostile
def test_a_lock_of_a_dead_process_is_taken_at_once_and_a_live_one_is_waited_for_aloud(tmp_path, monkeypatch):
    path = tmp_path / "s1_vit.pth"
    lock = tmp_path / ".s1_vit.pth.lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(str(dead.pid))
    out = io.StringIO()
    save_checkpoint(fake_checkpoint("first"), path, out=out)
    assert "waiting" not in out.getvalue() and path.is_file() and not lock.exists()
    lock.write_text("")  # a killed process left a lock before writing its id into it, long ago
    os.utime(lock, (0, 0))
    out = io.StringIO()
    save_checkpoint(fake_checkpoint("second"), path, out=out)
    assert "waiting" not in out.getvalue() and not lock.exists()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock.write_text(str(alive.pid))
        monkeypatch.setattr(safe_write_module, "LOCK_WAIT", 0.3)
        out = io.StringIO()
        with pytest.raises(LabError, match=f"another process \\(process {alive.pid}\\) has held"):
            save_checkpoint(fake_checkpoint("third"), path, out=out)
        assert f"waiting for another process (process {alive.pid}) writing" in out.getvalue()
    finally:
        alive.kill()
        alive.wait()
