"""Bad input and bad luck: nothing the user made is lost, nothing is mislabelled, and every error is one line.

One section per kind of failure; each test reproduces one bad input or accident that was found by trying them.
"""

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import labkit.checkpoint as checkpoint_module
import labkit.run as run_module
import labkit.safe_write as safe_write_module
from labkit.checkpoint import KEYS, load_checkpoint, model_from_checkpoint, save_checkpoint
from labkit.cli import main
from labkit.data import DataConfig, load_data
from labkit.errors import LabError
from labkit.grading import grade
from labkit.run import train_run
from labkit.settings import RunConfig
from labkit.sources import load_source


def fake_checkpoint(fingerprint: str) -> dict:
    """A small checkpoint of the documented shape, told apart by its run fingerprint."""
    return {key: None for key in KEYS} | {
        "format": "labkit-checkpoint",
        "version": 2,
        "model_state": {"w": torch.zeros(2)},
        "model_config": {"kind": "vit"},
        "preset": "fast",
        "student_id": "s1",
        "classes": ["a", "b"],
        "run_fingerprint": fingerprint,
    }


def fingerprints(folder: Path) -> list[str]:
    return sorted(load_checkpoint(p)["run_fingerprint"] for p in folder.glob("*.pth"))


# --- saving: races, kills, and the old file kept in place -------------------------------------------------------------

RACER = textwrap.dedent("""
    import sys, torch
    from labkit.checkpoint import KEYS, save_checkpoint
    path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for i in range(n):
        ckpt = {key: None for key in KEYS} | {"format": "labkit-checkpoint", "version": 2,
                "model_state": {"w": torch.zeros(2)}, "model_config": {"kind": "vit"}, "preset": "fast",
                "student_id": "s1", "classes": ["a", "b"], "run_fingerprint": f"{who}-{i}"}
        save_checkpoint(ckpt, path, out=open("/dev/null", "w"))
""")


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


def test_a_stale_lock_from_a_killed_save_does_not_block(tmp_path):
    path = tmp_path / "s1_vit.pth"
    lock = tmp_path / ".s1_vit.pth.lock"
    lock.write_text("12345")
    os.utime(lock, (0, 0))
    save_checkpoint(fake_checkpoint("new"), path, out=io.StringIO())
    assert path.is_file() and not lock.exists()


# --- output problems are found before training, and a trained model is never thrown away ------------------------------


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("trained although the output was unusable")

    monkeypatch.setattr(run_module, "fit", fail)


@pytest.mark.parametrize(
    "case, message",
    [
        ("out is a file", "is a file; give a folder with --out"),
        ("long id", "cannot be part of a file name; use up to 100"),
        ("newline in id", "cannot be part of a file name"),
        ("unwritable", "cannot write"),
    ],
)
def test_output_problems_stop_before_training(quick, tmp_path, no_training, monkeypatch, case, message):
    out_dir, student = tmp_path / "out", "s1"
    if case == "out is a file":
        out_dir.write_text("not a folder")
    if case == "long id":
        student = "s" * 300
    if case == "newline in id":
        student = "s1\nrm -rf"
    if case == "unwritable":  # as root, chmod cannot make a folder read-only, so the OS's refusal is simulated

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(safe_write_module.tempfile, "mkstemp", refuse)
    with pytest.raises(LabError, match=message):
        train_run(quick, RunConfig(epochs=1, student_id=student, outputs=out_dir), out=io.StringIO(), progress=False)


@pytest.mark.parametrize("content", [b"", b"my own notes, not a checkpoint"])
def test_an_empty_or_foreign_file_at_the_path_is_kept_and_the_model_saved(quick, tmp_path, content):
    (tmp_path / "s1_vit.pth").write_bytes(content)
    run = train_run(quick, RunConfig(epochs=1, student_id="s1", outputs=tmp_path), out=io.StringIO(), progress=False)
    assert load_checkpoint(run.path)["student_id"] == "s1"
    assert [p.read_bytes() for p in tmp_path.glob("s1_vit.*.pth")] == [content]


def test_a_save_that_fails_at_the_end_goes_to_the_rescue_folder(quick, tmp_path, monkeypatch):
    rescue = tmp_path / "rescued"
    rescue.mkdir()
    monkeypatch.setattr(run_module, "rescue_folder", lambda: rescue)
    real_save = checkpoint_module.save_checkpoint

    def folder_went_read_only(checkpoint, path, out=None):
        if Path(path).parent != rescue:
            raise PermissionError(13, "Permission denied", str(path))
        return real_save(checkpoint, path, out)

    monkeypatch.setattr(run_module, "save_checkpoint", folder_went_read_only)
    log = io.StringIO()
    run = train_run(quick, RunConfig(epochs=1, student_id="s1", outputs=tmp_path / "out"), out=log, progress=False)
    assert run.path.parent == rescue and load_checkpoint(run.path)["metrics"]["test_accuracy"] == run.test_accuracy
    assert f"saving the trained model as {run.path} instead" in log.getvalue()


# --- a grader's batch never stops on one file -------------------------------------------------------------------------


def test_every_broken_file_gets_an_error_row(tmp_path, runs_code):
    good = fake_checkpoint("x")
    (tmp_path / "empty_vit.pth").write_bytes(b"")
    (tmp_path / "text_vit.pth").write_text("hello")
    torch.save({k: v for k, v in good.items() if k != "metrics"}, tmp_path / "nokeys_vit.pth")
    torch.save(good | {"model_state": [1, 2]}, tmp_path / "list_vit.pth")
    torch.save(good | {"data": {"config": {"colour": True}, "test_fingerprint": "0"}}, tmp_path / "datakey_vit.pth")
    rows = {g.student_id: g for g in grade([tmp_path])}
    assert sorted(rows) == ["datakey", "empty", "list", "nokeys", "text"]
    assert all(g.result == "ERROR" and g.note for g in rows.values())
    assert "an empty file" in rows["empty"].note
    assert "lacks metrics" in rows["nokeys"].note
    assert "model_state is not a dict of tensors" in rows["list"].note


def test_an_unwritable_csv_is_an_error_before_grading(tmp_path, capsys):
    assert main(["grade", str(tmp_path), "--csv", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: --csv {tmp_path} is a folder")
    assert main(["grade", str(tmp_path), "--csv", str(tmp_path / "no" / "g.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("mark", ["60", "0.6"])
def test_a_baseline_as_percent_or_fraction_means_the_same(quick, tmp_path, capsys, mark):
    train_run(quick, RunConfig(epochs=1, student_id="s1", outputs=tmp_path), out=io.StringIO(), progress=False)
    main(["grade", str(tmp_path), "--baseline", mark])
    assert "> 60%" in capsys.readouterr().out.splitlines()[0]


# --- data that would train silently with wrong labels -----------------------------------------------------------------


def images(folder: Path, n: int = 4, value: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((8, 8), value + i, dtype=np.uint8)).save(folder / f"{i}.png")


def test_hidden_folders_and_macos_zip_folders_are_ignored(tmp_path):
    images(tmp_path / "cat")
    images(tmp_path / "dog", value=100)
    images(tmp_path / ".ipynb_checkpoints", n=2)  # JupyterLab makes it at the root
    (tmp_path / ".empty_hidden").mkdir()
    images(tmp_path / "cat" / ".thumbnails", n=3)  # hidden inside a class: not images of the class
    (tmp_path / "__MACOSX" / "cat").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    found = load_source(tmp_path, 8)
    assert found.classes == ["cat", "dog"] and torch.bincount(found.y).tolist() == [4, 4]


def test_a_symlink_loop_inside_a_class_reads_each_file_once(tmp_path):
    images(tmp_path / "cat")
    images(tmp_path / "dog", value=100)
    os.symlink("..", tmp_path / "cat" / "up")  # back to the root, and so into dog and into itself
    os.symlink(tmp_path / "cat" / "0.png", tmp_path / "cat" / "again.png")
    found = load_source(tmp_path, 8)
    assert torch.bincount(found.y).tolist() == [4, 4] and "repeated links skipped" in found.description


def test_a_looping_link_as_the_data_root_is_one_line(tmp_path):
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    with pytest.raises(LabError, match="symbolic link that loops"):
        load_source(tmp_path / "loop")


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.full((6, 8, 8), np.nan), np.arange(6) % 2, "NaN or infinite"),
        (np.full((6, 8, 8), np.inf), np.arange(6) % 2, "NaN or infinite"),
        (np.full((6, 8, 8), 300, dtype=np.int32), np.arange(6) % 2, "give 8-bit pixels"),
        (np.zeros((6, 8, 8), dtype=np.uint8), np.array([0, 6] * 3), "not 0..K-1"),
        (np.zeros((6, 8, 8), dtype=np.complex64), np.arange(6) % 2, "dtype complex64"),
    ],
)
def test_npz_pixels_and_labels_are_checked_by_kind(tmp_path, x, y, message):
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(LabError, match=message):
        load_source(tmp_path / "d.npz", 8)


def test_boolean_npz_images_become_black_and_white(tmp_path):
    x = np.zeros((4, 8, 8), dtype=bool)
    x[:, :4] = True
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(4) % 2)
    assert set(load_source(tmp_path / "d.npz", 8).x.unique().tolist()) == {0, 255}


def idx_folder(folder: Path, n_images: int, n_labels: int) -> Path:
    """The four raw idx files of a tiny MNIST-format set."""
    folder.mkdir()
    for prefix in ("train", "t10k"):
        header = np.array([2051, n_images, 28, 28], dtype=">i4").tobytes()
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(header + bytes(n_images * 784))
        labels = np.array([2049, n_labels], dtype=">i4").tobytes() + bytes((np.arange(n_labels) % 10).astype(np.uint8))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(labels)
    return folder


def test_idx_files_whose_counts_differ_are_refused(tmp_path):
    folder = idx_folder(tmp_path / "idx", n_images=20, n_labels=19)
    with pytest.raises(
        LabError, match="holds 20 images but train-labels-idx1-ubyte 19 labels; the files do not belong together"
    ):
        load_source(f"mnist:{folder}")


def test_truncated_idx_files_are_one_line(tmp_path):
    folder = idx_folder(tmp_path / "idx", n_images=20, n_labels=20)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(LabError, match="truncated or damaged"):
        load_source(f"mnist:{folder}")


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--classes", "0,0"], "name a class twice"),
        (["train", "--per-class", "-3"], "keep at least 1 image per class"),
        (["train", "--per-class", "0"], "keep at least 1 image per class"),
        (["train", "--data", ""], "the data source is empty"),
        (["train", "--device", "foo"], "unknown device 'foo'"),
        (["train", "--student-id", "a\tb"], "cannot be part of a file name"),
        (["summary", "--num-classes", "1"], "at least 2 classes"),
    ],
)
def test_accepted_but_wrong_inputs_are_one_line_errors(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--device", "cuda"]) == 2
    assert "device 'cuda' is not available on this machine" in capsys.readouterr().err


# --- tracebacks where a line belongs, and messages that mislead -------------------------------------------------------


def test_truncated_npz_is_one_line(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 8, 8), dtype=np.uint8), y=np.arange(4) % 2)
    data = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "d.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(LabError, match="cannot read .* as an .npz file"):
        load_source(tmp_path / "d.npz", 8)


@pytest.mark.parametrize("content, message", [(b"", "an empty file"), (b"hello", "corrupt or truncated")])
def test_evaluate_on_an_empty_or_text_file_is_one_line(tmp_path, capsys, content, message):
    (tmp_path / "s_vit.pth").write_bytes(content)
    assert main(["evaluate", str(tmp_path / "s_vit.pth")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_pickle_calling_os_system_is_reported_as_code_that_was_not_run(tmp_path):
    class Armed:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"model_state": Armed()}, tmp_path / "s_vit.pth")
    with pytest.raises(LabError, match=r"carries pickled code or objects \(\w+\.system\), which were not run"):
        load_checkpoint(tmp_path / "s_vit.pth")
    assert not (tmp_path / "pwned").exists()


def test_a_shape_mismatch_names_one_parameter_in_a_short_line(quick, tmp_path):
    run = train_run(quick, RunConfig(epochs=1, student_id="s1", outputs=tmp_path), out=io.StringIO(), progress=False)
    checkpoint = load_checkpoint(run.path)
    checkpoint["model_config"] = checkpoint["model_config"] | {"dim": 32, "depth": 2}
    with pytest.raises(LabError) as err:
        model_from_checkpoint(checkpoint)
    message = str(err.value)
    assert len(message) < 400 and "shapes differ, e.g." in message and "unexpected, e.g." in message


def test_data_config_checks_run_before_any_image_is_read():
    with pytest.raises(LabError, match="name a class twice"):
        load_data(DataConfig(classes=(1, 1)))
