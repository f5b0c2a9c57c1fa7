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
from labkit.checkpoint import load_checkpoint, save_checkpoint


def fingerprints(folder: Path) -> list[str]:
    return sorted(load_checkpoint(p)["run_fingerprint"] for p in folder.glob("*.pth"))


RACER = textwrap.dedent("""
    import sys, torch
    from labkit.checkpoint import KEYS, VERSION, save_checkpoint
    from labkit.models import config_to_dict
    from labkit.presets import get_preset
    path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for i in range(n):
        ckpt = {key: None for key in KEYS} | {"format": "labkit-checkpoint", "version": VERSION,
                "model_state": {"w": torch.zeros(2)}, "model_config": config_to_dict(get_preset("fast").model),
                "preset": "fast",
                "student_id": "s1", "classes": ["a", "b"], "run_fingerprint": f"{who}-{i}"}
        save_checkpoint(ckpt, path, out=open("/dev/null", "w"))
""")


@pytest.mark.hostile
def test_two_processes_saving_to_one_name_lose_nothing(tmp_path, fake):
    """Two runs with different settings save to the same file at once, over an older file: every checkpoint
    survives, one under the lab's name and the others under timestamped names (bounded: 2 x 6 saves)."""
    path = tmp_path / "s1_vit.pth"
    save_checkpoint(fake("older"), path, out=io.StringIO())
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
    assert not list(tmp_path.glob(".*")), "no temp file is left behind"


@pytest.mark.hostile
def test_the_old_file_stays_in_place_until_the_new_one_replaces_it(tmp_path, monkeypatch, fake):
    path = tmp_path / "s1_vit.pth"
    save_checkpoint(fake("old"), path, out=io.StringIO())
    real_replace = os.replace
    seen = []

    def replace(src, dst):
        seen.append((Path(dst).exists(), len(list(tmp_path.glob("*.pth")))))
        real_replace(src, dst)

    monkeypatch.setattr(safe_write_module.os, "replace", replace)
    save_checkpoint(fake("new"), path, out=io.StringIO())
    assert seen == [(True, 2)], "the old run was kept aside by a copy, the lab's name never went missing"
    assert fingerprints(tmp_path) == ["new", "old"] and load_checkpoint(path)["run_fingerprint"] == "new"


@pytest.mark.hostile
def test_a_crash_while_saving_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch, fake):
    path = tmp_path / "alice_vit.pth"
    checkpoint = fake("run")
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
def test_temp_files_of_killed_saves_are_removed_and_live_ones_kept(tmp_path, fake):
    path = tmp_path / "s1_vit.pth"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = tmp_path / f".s1_vit.pth.{dead.pid}.abc123.tmp"  # a save killed mid-write: its process is gone
    killed.write_bytes(b"half a checkpoint")
    running = tmp_path / f".s1_vit.pth.{os.getpid()}.def456.tmp"  # a save still running in this process
    running.write_bytes(b"being written")
    save_checkpoint(fake("new"), path, out=io.StringIO())
    assert not killed.exists() and running.exists()


def test_a_writer_waits_aloud_for_another_holding_the_folder_and_a_killed_one_holds_nothing(tmp_path, fake):
    holder = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); "
    alive = subprocess.Popen(
        [sys.executable, "-c", holder + "print(flush=True); time.sleep(1.5)", str(tmp_path)], stdout=subprocess.PIPE
    )
    alive.stdout.readline()  # the lock is held
    out = io.StringIO()
    save_checkpoint(fake("first"), tmp_path / "s1_vit.pth", out=out)
    assert "waiting for another process writing in" in out.getvalue() and alive.wait() == 0
    killed = subprocess.Popen([sys.executable, "-c", holder + "os.kill(os.getpid(), 9)", str(tmp_path)])
    killed.wait()
    out = io.StringIO()
    save_checkpoint(fake("second"), tmp_path / "s1_vit.pth", out=out)
    assert "waiting" not in out.getvalue()
