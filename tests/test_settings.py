"""One run's settings, checked once and shared by the settings cell, the command line and the report; the file names
a run's checkpoints get; and the lab's fixed facts (lab.py): the pass mark and where files are found and saved."""

from pathlib import Path

import pytest

from labkit.errors import LabError
from labkit.lab import BASELINE, passes
from labkit.settings import RunConfig, checkpoint_name, student_of


def test_the_settings_cell_and_the_config_hold_the_same_settings():
    settings = RunConfig(student_id="s1", data="data/mine", preset="reference", epochs=20, augment="none", seed=3)
    cell = settings.cell_values()
    assert list(cell) == ["STUDENT_ID", "DATA", "PRESET", "EPOCHS", "AUGMENT", "SEED", "OUTPUTS"]
    assert RunConfig.from_cell(cell | {"unrelated": 1}) == settings
    with pytest.raises(LabError, match="the settings cell lacks SEED"):
        RunConfig.from_cell({k: v for k, v in cell.items() if k != "SEED"})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"seed": -1}, "seed=-1: give a whole number from 0 to 4294967295"),
        ({"seed": 2**32}, "seed=4294967296: give a whole number from 0 to 4294967295"),
        ({"epochs": 0}, "epochs=0: give a whole number of at least 1"),
        ({"preset": "seed"}, "unknown preset 'seed'"),
        ({"augment": "flip"}, "unknown augmentation 'flip'"),
        ({"student_id": 1234567}, "student id 1234567 is a int; give it as text"),
    ],
)
def test_bad_settings_are_one_clear_error(changes, message):
    with pytest.raises(LabError, match=message):
        RunConfig(**changes)


def test_one_function_names_every_checkpoint_and_reads_the_student_back():
    assert checkpoint_name("s1") == "s1_vit.pth" and checkpoint_name("s1", "cnn") == "s1_cnn.pth"
    assert student_of("handin/s1_vit.pth") == student_of("s1_cnn.pth") == "s1"
    assert student_of("notes.pth") == "notes"


def test_a_student_id_is_limited_in_bytes_not_characters():
    """100 emoji are 400 bytes: too long for a file name with its temp and kept variants."""
    assert checkpoint_name("é" * 50) == "é" * 50 + "_vit.pth"
    with pytest.raises(LabError, match="cannot name a file"):
        checkpoint_name("é" * 51)


@pytest.mark.hostile
@pytest.mark.parametrize("student_id", [" ", "", "-h", "_x", ".hidden", "a b", "a/b", "😀", "s1\u202e"])
def test_a_student_id_starts_with_a_letter_or_digit_and_holds_only_letters_digits_dash_and_underscore(student_id):
    with pytest.raises(LabError, match="starting with a letter or digit"):
        checkpoint_name(student_id)


@pytest.mark.hostile
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": True}, "epochs=True: give a whole number"),
        ({"seed": False}, "seed=False: give a whole number"),
        ({"data": None}, r"data=None \(DATA in a notebook\) is not a path"),
        ({"outputs": False}, r"outputs=False \(OUTPUTS in a notebook\) is not a path"),
    ],
)
def test_settings_of_the_wrong_type_are_refused_not_converted(changes, message):
    with pytest.raises(LabError, match=message):
        RunConfig(**changes)


def test_an_output_folder_under_home_is_the_home_folder():
    assert RunConfig(outputs="~/handin").out_dir == Path.home() / "handin"


def test_a_data_path_relative_to_the_lab_works_from_the_notebooks_folder(tmp_path, monkeypatch):
    """The README's DATA = "data/<name>" from a notebook, whose kernel runs in notebooks/; a missing one says
    where it was looked for."""
    import shutil
    import uuid

    import numpy as np
    from PIL import Image

    from labkit.lab import NOTEBOOKS, lab_root
    from labkit.sources import load_source

    if lab_root() is None:
        pytest.skip("needs a clone of the lab")
    name = f"test-{uuid.uuid4().hex[:8]}"
    folder = lab_root() / "data" / name
    try:
        for label in ("a", "b"):
            (folder / label).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(folder / label / f"{i}.png")
        monkeypatch.chdir(NOTEBOOKS)
        assert load_source(f"data/{name}", 8).classes == ["a", "b"]
        with pytest.raises(LabError, match=f"looked in {NOTEBOOKS / 'data'} or {lab_root() / 'data'}"):
            load_source(f"data/{name}-missing", 8)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_checkpoints_go_to_the_clones_outputs_folder_from_anywhere(tmp_path, monkeypatch):
    """One rule for the command line and the notebooks (which run in notebooks/): outputs/ at the top of the lab."""
    from labkit.lab import NOTEBOOKS, outputs_dir

    monkeypatch.chdir(tmp_path)
    assert outputs_dir() == NOTEBOOKS.parent / "outputs"


def test_a_run_passes_only_above_the_pass_mark():
    assert BASELINE == 0.60
    assert passes(0.6001) and not passes(0.60) and not passes(0.59)
    assert passes(0.5, baseline=0.4)
