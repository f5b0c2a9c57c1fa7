"""Scoring a saved checkpoint: which data it is scored on, and the warnings where the score is not comparable."""

import pytest
import torch

from labkit.errors import LabError
from labkit.handin.evaluation import evaluate_checkpoint
from labkit.handin.grading import grade


@pytest.mark.hostile
def test_a_stored_data_source_is_read_only_if_it_is_the_built_in_set_or_given(good, tmp_path):
    config = good["data"]["config"] | {"source": "/usr/share"}
    torch.save(good | {"data": good["data"] | {"config": config}}, tmp_path / "s1_vit.pth")
    [row] = grade([tmp_path], baseline=0.1)
    assert row.result == "ERROR" and "pass --data with that data" in row.note
    [row] = grade([tmp_path], source="builtin", baseline=0.1)
    assert row.result == "PASS"


@pytest.mark.hostile
def test_other_class_names_on_the_same_images_are_warned_about(good, tmp_path):
    torch.save(good | {"classes": ["cat", "dog", "a", "b", "c", "d"]}, tmp_path / "s1_vit.pth")
    result = evaluate_checkpoint(tmp_path / "s1_vit.pth")
    assert any("its classes (cat, dog, a, b, c, d) are not the data's (0, 1, 2, 3, 4, 5)" in w for w in result.warnings)


@pytest.mark.hostile
def test_evaluate_reads_no_data_a_file_names_unless_it_is_the_built_in_set(good, tmp_path):
    config = good["data"]["config"] | {"source": str(tmp_path / "theirs.zip")}
    torch.save(good | {"data": good["data"] | {"config": config}}, tmp_path / "s1_vit.pth")
    with pytest.raises(LabError, match="which is not read from a checkpoint: pass --data with that data"):
        evaluate_checkpoint(tmp_path / "s1_vit.pth")
    assert evaluate_checkpoint(tmp_path / "s1_vit.pth", "builtin").test_size == 540
