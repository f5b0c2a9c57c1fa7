"""`python -m labkit grade`: every submission gets a row, bad files included, and nothing is executed."""

import csv
import io

import numpy as np
import pytest
import torch

from labkit.checkpoint import load_checkpoint
from labkit.cli import main
from labkit.data import DataConfig, load_data
from labkit.grading import grade
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
    assert "the test split differs" in row.note
