"""The notebooks' sentences read off a run: each says what its numbers show, and only that."""

import io
import re
from dataclasses import replace

import pytest
import torch

from labkit.checkpoint import load_checkpoint
from labkit.notebook import answers
from labkit.presets import get_preset
from labkit.run import train_run, variations
from labkit.settings import RunConfig


def right(n_right: int, n: int = 10) -> torch.Tensor:
    return torch.arange(n) < n_right


def checkpoint(seconds: float, epochs: int, recipe: dict, config: dict) -> dict:
    history = {"seconds": seconds, "eval_accuracy": [0.5] * epochs}
    return {
        "metrics": {"history": history},
        "data": {"sizes": {"train": 1260}},
        "classes": list("abcdef"),
        "train_config": recipe,
        "model_config": config,
    }


def test_q7_has_one_row_per_setting_with_the_paired_effect_against_this_run():
    settings = RunConfig()
    variants = {what: (other, right(5)) for what, other in variations(settings).items()}
    text = answers.tuning(settings, right(9), variants)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| setting")]
    names = [r.split(" | ")[0] for r in rows]
    assert names == ["| model and recipe (`PRESET`)", "| epochs (`EPOCHS`)", "| augmentation (`AUGMENT`)"]
    assert "| 75, 20 | 75 | the preset's, chosen with its model (row above) |" in rows[1]
    assert "| shift, none | shift |" in rows[2]
    assert "50.0% with 20, so +40.0 points for mine" in rows[1] and "p = 0.12" in rows[1]
    assert "| not varied here | `fast` | the lab's default: " in rows[0] and "on this data and split" in rows[0]
    assert text.startswith("I varied two settings")
    assert "spread between seeds is unknown" in text
    prose = [line for line in text.splitlines() if line and not line.startswith("|")]
    assert sum(len(re.findall(r"[.:](\s|$)", line)) for line in prose) <= 3


def test_q7_says_when_a_setting_was_the_students_choice():
    settings = RunConfig(epochs=12, augment="shift+flip")
    variants = {what: (other, right(5)) for what, other in variations(settings).items()}
    text = answers.tuning(settings, right(5), variants)
    assert "| 12, 6 | 12 | my choice in the settings cell |" in text
    assert "| shift+flip, none | shift+flip | my choice in the settings cell |" in text
    reference = answers.tuning(RunConfig(preset="reference", data="a.zip"), right(5), {})
    assert "| `reference` | my choice: the lab's reference" in reference and "not measured on this data" in reference


def test_q8_recommends_the_vit_only_when_it_is_better_beyond_chance():
    fast = {"lr": 2e-3, "epochs": 75}
    vit = checkpoint(60, 75, fast, {"kind": "vit", "shifted_patches": True})
    cnn = checkpoint(30, 30, fast | {"epochs": 30}, {"kind": "cnn"})
    tie = answers.vit_against_cnn(vit, cnn, right(95, 100), right(97, 100))
    assert tie.startswith("**For this data I would use the CNN**") and "within chance" in tie
    assert "within chance" in tie and "the CNN reached its result sooner" in tie
    assert "about 210 training images per class" in tie and "the ViT trained 75 epochs in 60 s" in tie
    assert "gets part of it from shifted patch tokens" in tie and "recipes differ" not in tie
    assert "spread between seeds is unknown" in tie
    better = answers.vit_against_cnn(vit, cnn, right(100, 100), right(80, 100))
    assert better.startswith("**For this data I would use the ViT**") and "beyond chance" in better
    quicker = answers.vit_against_cnn(checkpoint(20, 75, fast, {"kind": "vit"}), cnn, right(97, 100), right(95, 100))
    assert quicker.startswith("**For this data I would use the ViT**") and "the ViT reached its result" in quicker


def test_q8_says_when_the_recipes_differ_and_the_vit_has_no_prior():
    vit = checkpoint(60, 20, {"lr": 3e-4, "epochs": 20}, {"kind": "vit"})
    cnn = checkpoint(30, 30, {"lr": 2e-3, "epochs": 30}, {"kind": "cnn"})
    text = answers.vit_against_cnn(vit, cnn, right(50, 100), right(90, 100))
    assert "this ViT must learn it" in text and "Their recipes differ too" in text


def test_q9_gives_the_accuracy_the_baseline_and_what_mattered_in_five_sentences(quick, tmp_path):
    settings = RunConfig(epochs=1, student_id="q9", outputs=tmp_path)
    run = train_run(quick, settings, out=io.StringIO(), progress=False)
    n = len(quick.test)
    variants = {what: (other, torch.zeros(n, dtype=torch.bool)) for what, other in variations(settings).items()}
    text = answers.final_accuracy(load_checkpoint(run.path), 1234, settings, torch.ones(n, dtype=torch.bool), variants)
    assert f"**Final test accuracy: {run.test_accuracy:.2%}**" in text and "the 60% baseline" in text
    assert "epochs 1 rather than" not in text and "a ViT of 1,234 parameters" in text  # 1 epoch: no shorter run
    assert "augmentation shift rather than none (+100.0 points" in text and "changed it beyond chance" in text
    assert len(re.findall(r"[a-z)%]\.(\s|$)", text)) <= 5


def test_a_run_below_the_baseline_is_told_what_its_curves_point_to():
    falling = {"train_accuracy": [0.6], "eval_accuracy": [0.55], "eval_loss": [1.2, 1.1, 1.0, 0.9]}
    underfit = answers.next_steps(falling, "reference")
    assert "does not fit even its training images (60%" in underfit and "or the `fast` preset" in underfit
    assert "`fast`" not in answers.next_steps(falling, "fast")
    turned = answers.next_steps(falling | {"eval_loss": [1.2, 0.9, 1.0, 1.1]}, "reference")
    assert "test loss lowest in epoch 2 of 4" in turned and "smaller model (the `fast` preset)" in turned
    overfit = answers.next_steps({"train_accuracy": [0.99], "eval_accuracy": [0.55], "eval_loss": [1.0]}, "fast")
    assert "better than its test images (99% against 55%; test loss lowest in epoch 1 of 1)" in overfit


def test_q6_names_only_the_extras_this_model_has():
    assert answers.model_extras({"kind": "vit"}) == ""
    both = answers.model_extras({"kind": "vit", "shifted_patches": True, "init": "locality"})
    assert both.startswith("My model adds shifted patch tokens (SPT)") and "Its locality start sets positions" in both
    assert answers.model_extras({"kind": "vit", "init": "locality"}).startswith("My model's locality start")


def grid_similarity(g: int = 3) -> torch.Tensor:
    """Position similarity that falls with the distance between positions on a g x g grid."""
    rows, cols = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    cells = torch.stack([rows.flatten(), cols.flatten()], 1)
    distance = (cells[:, None] - cells[None]).abs().max(-1).values
    return (1.0 - 0.3 * distance).reshape(g, g, g, g)


def test_the_position_reading_tells_a_layout_put_in_from_one_learned():
    grid, none, scale = grid_similarity(), torch.full((3, 3, 3, 3), 0.2), (0.1, 0.9)
    assert "the sine-cosine start put the 2-D layout in" in answers.position_reading(grid, grid, scale)
    assert "training taught the embeddings the 2-D layout" in answers.position_reading(grid, none, scale)
    assert answers.position_reading(none, none, scale) == (
        "Colours span +0.10 to +0.90; no 2-D layout shows (neighbours +0.20, positions two or more apart +0.20; at the "
        "start +0.20 and +0.20)."
    )


def test_the_position_evidence_reads_the_paired_test():
    used = answers.position_evidence(right(90, 100), right(60, 100))
    assert "90.0%" in used and "60.0%" in used and "so the model uses where its patches are" in used
    assert "within chance on 100 test images" in answers.position_evidence(right(90, 100), right(89, 100))
    assert "higher beyond chance" in answers.position_evidence(right(60, 100), right(90, 100))


def test_confusion_summary_names_the_weakest_class_and_every_tied_mistake():
    matrix = torch.tensor([[8, 1, 1], [0, 9, 1], [0, 1, 9]])
    text = answers.confusion_summary(matrix, ["a", "b", "c"])
    assert text.startswith("4 of 30 test images") and "Weakest: a (80.0%)" in text
    assert "a taken for b; a taken for c; b taken for c; c taken for b (1 image each)" in text
    assert "no class is confused" in answers.confusion_summary(torch.eye(3, dtype=torch.long), ["a", "b", "c"])


@pytest.mark.hostile
def test_the_data_summary_counts_each_class_and_shows_its_name_as_text(builtin):
    text = answers.data_summary(builtin)
    assert "**Split:** 6 classes, 1260 train / 540 test images" in text
    assert "| 0 | 0 | 210 | 90 |" in text and "as many values as stored" in text
    hostile = replace(builtin, classes=["<img src=x onerror=alert(1)>", "a|b", "2", "3", "4", "5"])
    text = answers.data_summary(hostile)
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text and "| 1 | a\\|b | 210 | 90 |" in text


def test_the_taught_vit_is_said_with_its_time_the_teachers_and_both_paired_leads():
    text = answers.taught_vit(right(98, 100), right(95, 100), right(99, 100), 160.4, 39.6, 4)
    assert "its blocks 1, 3, 4 of 4 learn" in text
    assert "its blocks 1, 3 of 3 learn" in answers.taught_vit(right(98, 100), right(95, 100), right(99, 100), 1, 1, 3)
    assert "reached 98.0% in 160 s plus the CNN's 40 s" in text
    assert "+3.0 points on the plain ViT (p = " in text and "-1.0 points on the CNN (p = " in text


def test_what_the_answers_say_of_a_setting_follows_the_preset_that_has_it():
    settings = RunConfig(preset="reference")
    variants = {what: (other, right(5)) for what, other in variations(settings).items()}
    assert "| none | the preset's: its recipe trains on the images as they are |" in answers.tuning(
        settings, right(5), variants
    )
    assert "at a learning rate of 0.0003 (a constant rate)" in answers.recipe_words(
        vars(get_preset("reference").recipe()), 20
    )
    better_on_test = {"train_accuracy": [0.5], "eval_accuracy": [0.58], "eval_loss": [0.9, 1.0, 1.1, 1.2]}
    advice = answers.next_steps(better_on_test, "hybrid")
    assert advice.startswith("Its test loss was lowest in epoch 1 of 4") and "fits its training" not in advice
    assert "lowest in epoch 1 of 4" in advice and "`fast`" not in advice
    assert "convolutional stem" in answers.model_extras({"kind": "vit", "conv_stem": 32})
