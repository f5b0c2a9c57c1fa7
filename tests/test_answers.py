"""The notebooks' sentences read off a run: each says what its numbers show, and only that."""

import io
import re

import torch

from labkit import answers
from labkit.checkpoint import load_checkpoint
from labkit.run import train_run, variations
from labkit.settings import RunConfig


def right(n_right: int, n: int = 10) -> torch.Tensor:
    return torch.arange(n) < n_right


def test_q7_has_one_row_per_setting_with_the_paired_effect_against_this_run():
    settings = RunConfig()
    variants = {what: (other, right(5)) for what, other in variations(settings).items()}
    text = answers.tuning(settings, right(9), variants)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| setting")]
    assert [r.split(" | ")[0] for r in rows] == [
        "| model and recipe (`PRESET`)",
        "| epochs (`EPOCHS`)",
        "| augmentation (`AUGMENT`)",
    ]
    assert "| 75, 20 | 75 | the preset's own |" in rows[1] and "| shift, none | shift |" in rows[2]
    assert "50.0% with 20, so +40.0 points for mine" in rows[1] and "p = 0.12" in rows[1]
    assert "lab benchmark" in rows[0] and "spread between seeds is unknown" in text
    assert len(re.findall(r"[.!?](\s|$)", text.replace(rows[0], "").split("|")[0] + text.split("\n")[-1])) <= 3


def test_q7_says_when_a_setting_was_the_students_choice():
    settings = RunConfig(epochs=12, augment="shift+flip")
    variants = {what: (other, right(5)) for what, other in variations(settings).items()}
    text = answers.tuning(settings, right(5), variants)
    assert "| 12, 6 | 12 | my choice in the settings cell |" in text
    assert "| shift+flip, none | shift+flip | my choice in the settings cell |" in text


def test_q8_recommends_the_vit_only_when_it_is_better_beyond_chance():
    def checkpoint(seconds):
        return {
            "metrics": {"history": {"seconds": seconds}},
            "data": {"sizes": {"train": 1260}},
            "classes": list("abcdef"),
        }

    tie = answers.vit_against_cnn(checkpoint(60), checkpoint(30), right(95, 100), right(97, 100))
    assert tie.startswith("**For this data I would use the CNN**") and "within chance" in tie
    assert "about 210 training images per class" in tie and "the ViT trained in 60 s, the CNN in 30 s" in tie
    vit = answers.vit_against_cnn(checkpoint(60), checkpoint(30), right(100, 100), right(80, 100))
    assert vit.startswith("**For this data I would use the ViT**") and "beyond chance" in vit


def test_q9_gives_the_accuracy_the_baseline_and_the_measured_settings_in_five_sentences(quick, tmp_path):
    settings = RunConfig(epochs=1, student_id="q9", outputs=tmp_path)
    run = train_run(quick, settings, out=io.StringIO(), progress=False)
    n = len(quick.test)
    variants = {what: (other, torch.zeros(n, dtype=torch.bool)) for what, other in variations(settings).items()}
    text = answers.final_accuracy(load_checkpoint(run.path), 1234, settings, torch.ones(n, dtype=torch.bool), variants)
    assert f"**Final test accuracy: {run.test_accuracy:.2%}**" in text and "the 60% baseline" in text
    assert "epochs rather than" not in text and "a ViT of 1,234 parameters" in text  # a 1-epoch run: no shorter one
    assert "augmentation shift rather than none changed it by" in text and "beyond chance" in text
    assert len(re.findall(r"[a-z)%]\.(\s|$)", text)) <= 5


def test_the_position_reading_tells_a_layout_put_in_from_one_learned():
    near = torch.eye(4).reshape(2, 2, 2, 2) + 0.5  # every position like its neighbours
    flat = torch.full((2, 2, 2, 2), 0.5)
    flat.view(4, 4).fill_diagonal_(1.0)
    g = 3
    grid = torch.zeros(g, g, g, g)
    for r in range(g):
        for c in range(g):
            for r2 in range(g):
                for c2 in range(g):
                    grid[r, c, r2, c2] = 1.0 - 0.3 * max(abs(r - r2), abs(c - c2))
    none = torch.full((g, g, g, g), 0.2)
    assert answers.position_reading(grid, grid).startswith("The 2-D layout was put in by the sine-cosine start")
    assert answers.position_reading(grid, none).startswith("Training taught the embeddings the 2-D layout")
    assert answers.position_reading(none, none).startswith("No 2-D layout shows")
    del near, flat


def test_the_position_evidence_reads_the_paired_test():
    used = answers.position_evidence(right(90, 100), right(60, 100))
    assert "90.0%" in used and "60.0%" in used and "so the model uses where its patches are" in used
    assert "within chance" in answers.position_evidence(right(90, 100), right(89, 100))
