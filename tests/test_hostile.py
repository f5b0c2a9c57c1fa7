"""What a hostile or unlucky student can hand a grader, or do to their own run: every case reproduced, each one line
or one row, nothing run, nothing lost, no machine exhausted."""

import csv
import io
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import labkit.run as run_module
import labkit.safe_write as safe_write_module
import labkit.sources as sources_module
from labkit.checkpoint import load_checkpoint, save_checkpoint
from labkit.cli import main
from labkit.errors import LabError
from labkit.evaluation import evaluate_checkpoint
from labkit.grading import grade, table, write_csv
from labkit.run import train_run
from labkit.settings import RunConfig
from labkit.sources import load_source


@pytest.fixture(scope="module")
def good(quick, tmp_path_factory) -> dict:
    """A real checkpoint of a short run on the built-in set, as a dict to craft from."""
    folder = tmp_path_factory.mktemp("good")
    run = train_run(quick, RunConfig(student_id="s1", epochs=1, outputs=folder), out=io.StringIO(), progress=False)
    return load_checkpoint(run.path)


# --- what a file stores reaches the grader's terminal and spreadsheet only as text --------------------------------


def test_forged_ids_are_printable_text_and_a_name_that_differs_is_flagged(good, tmp_path):
    torch.save(good | {"student_id": "s1\r\n\x1b[32ms7777777  PASS\x1b[0m"}, tmp_path / "s1_vit.pth")
    torch.save(good | {"student_id": '=HYPERLINK("http://x","s3")'}, tmp_path / "s3_vit.pth")
    torch.save(good | {"student_id": "s1111111"}, tmp_path / "s2222222_vit.pth")
    grades = grade([tmp_path], baseline=0.1)
    text = table(grades, 0.1)
    assert "\x1b" not in text and "\r" not in text and len(text.splitlines()) == 1 + len(grades)
    rows = {g.file: g for g in grades}
    assert "the file stores student id 's1111111', but its name gives 's2222222'" in rows["s2222222_vit.pth"].note
    write_csv(grades, tmp_path / "grades.csv")
    with open(tmp_path / "grades.csv") as f:
        cells = [cell for row in csv.reader(f) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")], "no cell may start a spreadsheet formula"
    assert '\'=HYPERLINK("http://x","s3")' in cells


def test_a_file_of_wrong_types_is_one_error_row_and_the_rest_are_graded(good, tmp_path):
    torch.save(good | {"student_id": 12345}, tmp_path / "int_vit.pth")
    wrong = good["metrics"] | {"test_accuracy": "99%"}
    torch.save(
        good | {"metrics": wrong, "data": good["data"] | {"test_fingerprint": "0" * 64}}, tmp_path / "str_vit.pth"
    )
    torch.save(good | {"metrics": good["metrics"] | {"test_accuracy": float("nan")}}, tmp_path / "nan_vit.pth")
    torch.save(good, tmp_path / "s1_vit.pth")
    grades = {g.file: g for g in grade([tmp_path], baseline=0.1)}
    assert grades["s1_vit.pth"].result == "PASS"
    assert grades["int_vit.pth"].student_id == "12345" and grades["int_vit.pth"].result == "PASS"
    assert grades["str_vit.pth"].stored_accuracy is None and "test split differs" in grades["str_vit.pth"].note
    assert grades["nan_vit.pth"].stored_accuracy is None and "not a number" in grades["nan_vit.pth"].note
    table(list(grades.values()), 0.1)
    write_csv(list(grades.values()), tmp_path / "grades.csv")


# --- a submission cannot exhaust the grader's machine ----------------------------------------------------------


def test_a_config_asking_for_a_huge_model_is_refused_before_any_allocation(good, tmp_path):
    torch.save(good | {"model_config": good["model_config"] | {"heads": 10**6}}, tmp_path / "big_vit.pth")
    torch.save(good | {"model_config": good["model_config"] | {"image_size": 100_000}}, tmp_path / "wide_vit.pth")
    rows = {g.file: g for g in grade([tmp_path], baseline=0.1)}
    assert "no lab model is that large" in rows["big_vit.pth"].note and "parameters" in rows["big_vit.pth"].note
    assert "images of 100000 px" in rows["wide_vit.pth"].note


def test_a_compressed_entry_or_a_tensor_bigger_than_its_shape_is_refused(good, tmp_path):
    path = tmp_path / "packed_vit.pth"
    torch.save(good, path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "z_vit.pth", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    with pytest.raises(LabError, match="compressed entry .* which torch.save never writes"):
        load_checkpoint(tmp_path / "z_vit.pth")
    hidden = torch.zeros(1_000_000)  # the shape says 2 numbers, the storage carries a million
    state = good["model_state"] | {"cls_token": hidden[:2]}
    torch.save(good | {"model_state": state}, tmp_path / "view_vit.pth")
    with pytest.raises(LabError, match="carries 4,000,000 bytes, more than its shape needs"):
        load_checkpoint(tmp_path / "view_vit.pth")


def test_a_stored_data_source_is_read_only_if_it_is_the_built_in_set_or_given(good, tmp_path):
    config = good["data"]["config"] | {"source": "/usr/share"}
    torch.save(good | {"data": good["data"] | {"config": config}}, tmp_path / "s1_vit.pth")
    [row] = grade([tmp_path], baseline=0.1)
    assert row.result == "ERROR" and "pass --data with the course's data" in row.note
    [row] = grade([tmp_path], source="builtin", baseline=0.1)
    assert row.result == "PASS"


def test_grading_prints_a_line_per_file_as_it_goes(good, tmp_path, capsys):
    for name in ("a", "b", "c"):
        torch.save(good | {"student_id": name}, tmp_path / f"{name}_vit.pth")
    (tmp_path / "d_vit.pth").mkdir()  # a folder named like a checkpoint is passed over
    main(["grade", str(tmp_path), "--baseline", "10"])
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == ["[1/3] a_vit.pth", "[2/3] b_vit.pth", "[3/3] c_vit.pth"]


@pytest.mark.parametrize("kind, message", [("folder", "is a folder, not a file"), ("fifo", "is a named pipe")])
def test_a_folder_or_pipe_named_pth_says_what_it_is(tmp_path, kind, message):
    path = tmp_path / "s1_vit.pth"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    with pytest.raises(LabError, match=message):
        load_checkpoint(path)


def test_other_class_names_on_the_same_images_are_warned_about(good, tmp_path):
    torch.save(good | {"classes": ["cat", "dog", "a", "b", "c", "d"]}, tmp_path / "s1_vit.pth")
    result = evaluate_checkpoint(tmp_path / "s1_vit.pth")
    assert any("its classes (cat, dog, a, b, c, d) are not the data's (0, 1, 2, 3, 4, 5)" in w for w in result.warnings)


# --- nothing trained is lost: a full disk, Ctrl-C, a lock left by a killed run --------------------------------


def test_a_full_disk_at_the_target_saves_the_model_in_the_rescue_folder(quick, tmp_path, monkeypatch):
    full = tmp_path / "full"
    full.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(full)]).returncode:
        pytest.skip("needs root to mount a 200 KB tmpfs as the full disk")
    try:
        rescue = tmp_path / "rescued"
        rescue.mkdir()
        monkeypatch.setattr(run_module, "rescue_folder", lambda: rescue)
        log = io.StringIO()
        run = train_run(quick, RunConfig(student_id="s1", epochs=1, outputs=full), out=log, progress=False)
        assert run.path.parent == rescue and load_checkpoint(run.path)["metrics"]["test_accuracy"] == run.test_accuracy
        assert "could not save full/s1_vit.pth" in log.getvalue() or "could not save" in log.getvalue()
        assert list(full.iterdir()) == [], "no temp file is left on the full disk"
    finally:
        subprocess.run(["umount", str(full)])


def test_ctrl_c_while_training_or_saving_is_one_line_saying_what_was_kept(quick, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "fit", interrupted)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--no-progress", "--out", "out"]) == 2
    assert capsys.readouterr().err == "error: training interrupted (Ctrl-C): nothing was saved\n"
    monkeypatch.undo()
    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(LabError, match=r"interrupted \(Ctrl-C\) while saving: .* was not written"):
        train_run(quick, RunConfig(epochs=1, outputs=tmp_path / "out"), out=io.StringIO(), progress=False)
    assert not list((tmp_path / "out").glob("*")), "no temp file is left"


def test_a_lock_of_a_dead_process_is_taken_at_once_and_a_live_one_is_waited_for_aloud(good, tmp_path, monkeypatch):
    path = tmp_path / "s1_vit.pth"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".s1_vit.pth.lock").write_text(str(dead.pid))
    out = io.StringIO()
    save_checkpoint(good, path, out=out)
    assert "waiting" not in out.getvalue() and path.is_file()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / ".s1_vit.pth.lock").write_text(str(alive.pid))
        monkeypatch.setattr(safe_write_module, "LOCK_WAIT", 0.3)
        out = io.StringIO()
        with pytest.raises(LabError, match=f"another process \\(process {alive.pid}\\) has held"):
            save_checkpoint(good, path, out=out)
        assert f"waiting for another process (process {alive.pid}) writing" in out.getvalue()
    finally:
        alive.kill()


# --- zip sources: checked before unpacking, unpacked whole, again when they change ------------------------------


def image_zip(path: Path, classes: dict[str, int], **entries) -> Path:
    """A zip of class folders of small PNGs, and any extra entries (name: bytes)."""
    with zipfile.ZipFile(path, "w") as z:
        for name, n in classes.items():
            for i in range(n):
                buffer = io.BytesIO()
                Image.fromarray(np.full((8, 8), (30 * i) % 256, dtype=np.uint8)).save(buffer, "PNG")
                z.writestr(f"{name}/{i}.png", buffer.getvalue())
        for name, data in entries.items():
            z.writestr(name, data)
    return path


def test_a_changed_zip_is_unpacked_again_and_the_student_is_told_which_was_read(tmp_path):
    path = image_zip(tmp_path / "mylab.zip", {"a": 3, "b": 3})
    first = load_source(path, 8)
    assert "unpacked to" in first.description and first.classes == ["a", "b"]
    assert "unpacked earlier to" in load_source(path, 8).description
    image_zip(path, {"a": 3, "b": 3, "c": 3})
    again = load_source(path, 8)
    assert again.classes == ["a", "b", "c"] and "unpacked again, the zip having changed" in again.description
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_folder_or_file_the_student_made_at_the_zips_name_is_left_alone(tmp_path):
    path = image_zip(tmp_path / "mylab.zip", {"a": 3, "b": 3})
    (tmp_path / "mylab").mkdir()
    (tmp_path / "mylab" / "notes.txt").write_text("mine")
    with pytest.raises(LabError, match="already exists and was not unpacked from mylab.zip by labkit"):
        load_source(path, 8)
    assert (tmp_path / "mylab" / "notes.txt").read_text() == "mine"


def test_a_zip_that_would_unpack_too_far_is_refused_before_unpacking(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/zeros.png", bytes(150_000_000))  # 150 MB of zeros in about 150 KB
    with pytest.raises(LabError, match="would unpack to 0.1 GiB .*over the limit"):
        load_source(path, 8)
    assert not (tmp_path / "bomb").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_encrypted_and_unknown_compression_entries_are_one_line(tmp_path):
    locked = image_zip(tmp_path / "locked.zip", {"a": 2, "b": 2})
    data = bytearray(locked.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the "encrypted" bit of every entry
        start = 0
        while (start := data.find(signature, start)) != -1:
            data[start + offset] |= 0x1
            start += 4
    locked.write_bytes(bytes(data))
    with pytest.raises(LabError, match="is password-protected"):
        load_source(locked, 8)
    odd = image_zip(tmp_path / "odd.zip", {"a": 2, "b": 2})
    data = bytearray(odd.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # compression method 99: unknown
        start = 0
        while (start := data.find(signature, start)) != -1:
            data[start + offset : start + offset + 2] = struct.pack("<H", 99)
            start += 4
    odd.write_bytes(bytes(data))
    with pytest.raises(LabError, match="zip it again with ordinary"):
        load_source(odd, 8)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no partial folder is left"


def test_ctrl_c_while_unpacking_leaves_no_partial_folder(tmp_path, monkeypatch):
    path = image_zip(tmp_path / "mylab.zip", {"a": 3, "b": 3})

    def interrupted(self, where):
        (Path(where) / "half").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile.ZipFile, "extractall", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_source(path, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mylab.zip"]


def test_an_unwritable_folder_and_a_file_at_the_target_are_one_line(tmp_path, monkeypatch):
    path = image_zip(tmp_path / "mylab.zip", {"a": 3, "b": 3})
    (tmp_path / "mylab").write_text("a file")
    with pytest.raises(LabError, match="already exists and was not unpacked"):
        load_source(path, 8)
    (tmp_path / "mylab").unlink()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sources_module.tempfile, "mkdtemp", refuse)
    with pytest.raises(LabError, match="copy the zip to a folder you can write"):
        load_source(path, 8)


UNPACK_AT_ONCE = """
import sys
from labkit.sources import load_source
print(load_source(sys.argv[1], 8).classes)
"""


def test_two_first_runs_on_one_zip_at_once_both_succeed(tmp_path):
    path = image_zip(tmp_path / "mylab.zip", {f"c{i}": 40 for i in range(4)})
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", UNPACK_AT_ONCE, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [r.communicate(timeout=120) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    assert all("['c0', 'c1', 'c2', 'c3']" in out for out, _ in outputs)


# --- images and arrays: only what the README promises is decoded, and nothing declares its way into memory ------


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels, with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_and_a_disguised_format_are_one_line_naming_the_file(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / name / "0.png")
    (tmp_path / "a" / "bomb.png").write_bytes(png_header(30000, 30000))
    with pytest.raises(LabError, match=r"image .*bomb.png declares more than .* pixels"):
        load_source(tmp_path, 8)
    (tmp_path / "a" / "bomb.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")
    with pytest.raises(LabError, match=r"bomb.png: not a PNG, JPEG, BMP image"):
        load_source(tmp_path, 8)


def test_npz_arrays_that_declare_more_than_they_hold_are_refused_from_their_headers(tmp_path):
    path = tmp_path / "claims.npz"
    with zipfile.ZipFile(path, "w") as z:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "|u1", "fortran_order": False, "shape": (1_000_000, 1000, 1000)}
        )
        z.writestr("x.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + bytes(100))
        buffer = io.BytesIO()
        np.save(buffer, np.zeros(4, dtype=np.int64))
        z.writestr("y.npy", buffer.getvalue())
    with pytest.raises(LabError, match=r"x.npy declares a \(1000000, 1000, 1000\) array of 931.3 GiB"):
        load_source(path, 8)


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros((4, 0, 0), dtype=np.uint8), np.arange(4) % 2, r"x has shape \(4, 0, 0\)"),
        (np.zeros((4, 8, 8), dtype=np.uint8), np.array([0, 1, 2**40, 1]), r"labels \[0, 1, 1099511627776\]"),
    ],
)
def test_empty_images_and_huge_labels_are_one_line_at_once(tmp_path, x, y, message):
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(LabError, match=message):
        load_source(tmp_path / "d.npz", 8)


def test_a_pipe_named_npz_is_refused_without_opening_it(tmp_path):
    os.mkfifo(tmp_path / "x.npz")
    with pytest.raises(LabError, match="is a named pipe"):
        load_source(tmp_path / "x.npz", 8)


def test_a_huge_class_count_for_summary_is_one_line(capsys):
    assert main(["summary", "--num-classes", "1000000000"]) == 2
    assert "1,000,000,000 classes (limit 10,000)" in capsys.readouterr().err
