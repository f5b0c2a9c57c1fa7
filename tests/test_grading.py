"""`python -m labkit grade`: every submission gets a row, bad files included, nothing is executed, and what a file
stores reaches the grader's terminal and spreadsheet only as text."""

import csv
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from labkit.checkpoint import load_checkpoint
from labkit.cli import main
from labkit.data import DataConfig, load_data
from labkit.errors import LabError
from labkit.handin import grading
from labkit.handin.grading import grade, table, write_csv
from labkit.models import build_model
from labkit.presets import get_preset
from labkit.run import train_run
from labkit.settings import RunConfig


@pytest.fixture(scope="module")
def submissions(builtin, quick, runs_code, tmp_path_factory):
    """A folder as a grader receives it: good, bare, broken and hostile files."""
    folder = tmp_path_factory.mktemp("submissions")
    train_run(
        quick, RunConfig(preset="fast", epochs=2, student_id="alice", outputs=folder), out=io.StringIO(), progress=False
    )
    torch.save(build_model(get_preset("reference").model, seed=0).state_dict(), folder / "bob_vit.pth")
    good = (folder / "alice_vit.pth").read_bytes()
    (folder / "carol_vit.pth").write_bytes(good[: len(good) // 2])
    (folder / "dave_vit.pth").write_bytes(b"not a checkpoint at all")
    torch.save({"model_state": runs_code(folder / "pwned")}, folder / "eve_vit.pth")
    torch.save(build_model(get_preset("cnn").model, seed=0).state_dict(), folder / "frank_vit.pth")
    np.savez(folder / "three.npz", x=builtin.train.x[:90, 0].numpy(), y=np.arange(90) % 3)  # a 3-class data set
    three = load_data(DataConfig(source=str(folder / "three.npz")))
    train_run(
        three, RunConfig(preset="fast", epochs=1, student_id="grace", outputs=folder), out=io.StringIO(), progress=False
    )
    return folder


@pytest.fixture(scope="module")
def good(submissions) -> dict:
    """A real checkpoint of a short run on the built-in set, as a dict to craft from."""
    return load_checkpoint(submissions / "alice_vit.pth")


@pytest.mark.hostile
def test_every_file_gets_a_row_with_its_reason(submissions):
    rows = {g.student_id: g for g in grade([submissions], source="builtin", baseline=0.10)}
    assert sorted(rows) == ["alice", "bob", "carol", "dave", "eve", "frank", "grace"]
    alice = rows["alice"]
    assert alice.result == "PASS" and alice.preset == "fast" and alice.accuracy == alice.stored_accuracy
    bob = rows["bob"]  # an untrained reference model: graded against the baseline like any other
    assert bob.preset == "reference" and bob.params == 5_436_678 and bob.stored_accuracy is None
    assert bob.result == ("PASS" if bob.accuracy > 0.10 else "FAIL")
    assert "not a readable checkpoint" in rows["carol"].note
    assert "not a readable checkpoint" in rows["dave"].note
    assert "carries pickled code" in rows["eve"].note
    assert "neither a labkit checkpoint" in rows["frank"].note
    assert "made for 3 classes but the data has 6" in rows["grace"].note
    assert all(rows[s].result == "ERROR" for s in ("carol", "dave", "eve", "frank", "grace"))
    assert not (submissions / "pwned").exists(), "loading must never run code from a file"


def test_the_cli_prints_a_table_writes_a_csv_and_fails_unless_all_pass(submissions, tmp_path, capsys):
    good = submissions / "alice_vit.pth"
    assert main(["grade", str(good), "--baseline", "10", "--csv", str(tmp_path / "g.csv")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["file", "student", "(stored)", "preset"]
    assert "alice_vit.pth" in out and "PASS" in out
    with open(tmp_path / "g.csv") as f:
        [row] = list(csv.DictReader(f))
    stored = load_checkpoint(good)["metrics"]["test_accuracy"]
    assert row["student_id"] == "alice" and float(row["accuracy"]) == pytest.approx(stored)
    assert main(["grade", str(submissions)]) == 1
    assert "ERROR" in capsys.readouterr().out
    assert not (submissions / "pwned").exists()


def test_a_changed_test_split_is_flagged(submissions):
    [row] = grade([submissions / "alice_vit.pth"], source="builtin", baseline=0.1)
    assert row.note == ""
    other = submissions.parent / "other"
    other.mkdir()
    (other / "alice_vit.pth").write_bytes((submissions / "alice_vit.pth").read_bytes())
    checkpoint = load_checkpoint(other / "alice_vit.pth")
    checkpoint["data"]["test_fingerprint"] = "0" * 64
    torch.save(checkpoint, other / "alice_vit.pth")
    [row] = grade([other], baseline=0.1)
    assert "its test split differs" in row.note


@pytest.mark.hostile
def test_every_broken_file_gets_an_error_row(tmp_path, fake):
    good = fake("x")
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
    assert "model_state is a list" in rows["list"].note


@pytest.mark.hostile
def test_an_unwritable_csv_is_an_error_before_grading(tmp_path, capsys):
    assert main(["grade", str(tmp_path), "--csv", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: --csv {tmp_path} is a folder")
    (tmp_path / "afile").write_text("mine")
    assert main(["grade", str(tmp_path), "--csv", str(tmp_path / "afile" / "g.csv")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err


@pytest.mark.hostile
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


@pytest.mark.hostile
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
    assert grades["int_vit.pth"].result == "ERROR" and "student_id is an int" in grades["int_vit.pth"].note
    assert grades["str_vit.pth"].stored_accuracy is None and "test split differs" in grades["str_vit.pth"].note
    assert grades["nan_vit.pth"].stored_accuracy is None and "not a number" in grades["nan_vit.pth"].note
    table(list(grades.values()), 0.1)
    write_csv(list(grades.values()), tmp_path / "grades.csv")


@pytest.mark.hostile
def test_grading_prints_a_line_per_file_as_it_goes(good, tmp_path, capsys):
    for name in ("a", "b", "c"):
        torch.save(good | {"student_id": name}, tmp_path / f"{name}_vit.pth")
    (tmp_path / "d_vit.pth").mkdir()  # a folder named like a checkpoint is passed over
    main(["grade", str(tmp_path), "--baseline", "10"])
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == ["[1/3] a_vit.pth", "[2/3] b_vit.pth", "[3/3] c_vit.pth"]


@pytest.mark.hostile
def test_the_lab_split_is_enforced_whatever_the_file_stores(good, tmp_path):
    """A file storing a tiny split of its choosing is scored on the lab's 540 test images, and says so."""
    config = good["data"]["config"] | {"per_class": 2, "test_fraction": 0.5, "split_seed": 10}
    torch.save(good | {"data": good["data"] | {"config": config}}, tmp_path / "alice_vit.pth")
    [row] = grade([tmp_path], source="builtin", baseline=0.1)
    assert row.test_images == 540 and "test images" in table([row], 0.1)
    assert "it stores other split settings (per_class=2, test_fraction=0.5, split_seed=10)" in row.note


@pytest.mark.hostile
def test_rows_are_named_by_their_path_and_shared_bytes_runs_and_ids_are_noted(good, tmp_path):
    for student in ("Alice Smith_1001", "Bob Jones_1002"):
        (tmp_path / student).mkdir()
        torch.save(good | {"student_id": "student_id"}, tmp_path / student / "student_id_vit.pth")
    nan = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in good["model_state"].items()}
    (tmp_path / "Carol_1003").mkdir()
    torch.save(good | {"student_id": "carol", "model_state": nan}, tmp_path / "Carol_1003" / "carol_vit.pth")
    rows = {g.file: g for g in grade([tmp_path], source="builtin", baseline=0.1)}
    assert sorted(rows) == [
        "Alice Smith_1001/student_id_vit.pth",
        "Bob Jones_1002/student_id_vit.pth",
        "Carol_1003/carol_vit.pth",
    ]
    bob = rows["Bob Jones_1002/student_id_vit.pth"].note
    first = "Alice Smith_1001/student_id_vit.pth"
    assert f"same bytes as {first}" in bob and f"same run fingerprint as {first}" in bob
    assert f"same student id as {first}" in bob
    assert "of its weights are NaN or infinite" in rows["Carol_1003/carol_vit.pth"].note


@pytest.mark.hostile
def test_any_case_of_pth_and_pt_is_graded_and_side_files_are_not(good, tmp_path):
    for name in ("a_vit.PTH", "b_vit.pt", "__MACOSX/._a_vit.pth", ".ipynb_checkpoints/a_vit.pth", "._c_vit.pth"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        torch.save(good | {"student_id": name[0]}, tmp_path / name)
    assert [g.file for g in grade([tmp_path], source="builtin")] == ["a_vit.PTH", "b_vit.pt"]


@pytest.mark.hostile
def test_a_folder_that_cannot_be_listed_is_one_error_row_and_the_rest_are_graded(good, tmp_path):
    torch.save(good, tmp_path / "alice_vit.pth")
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(30):  # 30 levels of 200-character names: past PATH_MAX, as GNU tar can unpack them
            os.mkdir("d" * 200, dir_fd=fd)
            fd, old = os.open("d" * 200, os.O_RDONLY, dir_fd=fd), fd
            os.close(old)
    finally:
        os.close(fd)
    rows = grade([tmp_path], source="builtin", baseline=0.1)
    assert [g.result for g in rows] == ["PASS", "ERROR"]
    assert rows[1].note.startswith("folder cannot be listed (File name too long)")


@pytest.mark.hostile
def test_the_csv_keeps_a_file_already_there_and_refuses_a_pipe(good, tmp_path, capsys):
    torch.save(good, tmp_path / "alice_vit.pth")
    book = tmp_path / "out" / "gradebook.csv"
    book.parent.mkdir()
    book.write_text("my precious gradebook")
    assert main(["grade", str(tmp_path / "alice_vit.pth"), "--csv", str(book), "--baseline", "10"]) == 0
    kept = [p for p in book.parent.iterdir() if p != book]
    assert [p.read_text() for p in kept] == [
        "my precious gradebook"
    ] and f"kept as {kept[0]}" in capsys.readouterr().out
    os.mkfifo(tmp_path / "pipe.csv")
    assert main(["grade", str(tmp_path / "alice_vit.pth"), "--csv", str(tmp_path / "pipe.csv")]) == 2
    assert "is a named pipe (FIFO), not a file" in capsys.readouterr().err


@pytest.mark.hostile
def test_a_csv_that_fails_to_write_after_grading_is_one_line(good, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(grading, "write_whole", full)
    with pytest.raises(LabError, match=r"cannot write .*g.csv \(No space left on device\); the table above has"):
        write_csv([], tmp_path / "g.csv")


@pytest.mark.hostile
def test_grading_from_inside_a_submission_folder_imports_nothing_from_it(good, tmp_path):
    torch.save(good, tmp_path / "alice_vit.pth")
    (tmp_path / "einops.py").write_text("open('pwned', 'w').close()\n")
    run = subprocess.run([sys.executable, "-m", "labkit", "grade", "."], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode in (0, 1), run.stderr
    assert not (tmp_path / "pwned").exists()
