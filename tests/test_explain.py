"""The evidence behind the QA notebook: position similarity, attention maps, rollout, the sweep table."""

import io

import pytest
import torch

from labkit import answers, explain, results, sweep
from labkit.data import DataConfig, load_data
from labkit.metrics import confusion_matrix, confusion_summary, smoothing_floor
from labkit.models import build_model, fit_to_data
from labkit.presets import get_preset
from labkit.summary import render, summarize


def test_position_similarity_is_a_grid_of_cosine_maps():
    model = build_model(get_preset("reference").model, seed=0)
    sim = explain.position_similarity(model)
    assert sim.shape == (7, 7, 7, 7)
    torch.testing.assert_close(sim[2, 3, 2, 3], torch.tensor(1.0))  # every position is most like itself
    torch.testing.assert_close(sim[1, 5, 4, 0], sim[4, 0, 1, 5])  # and similarity is symmetric


def test_attention_maps_cls_attention_and_rollout():
    model = build_model(get_preset("reference").model, seed=0)
    maps = explain.attention_maps(model, torch.randn(1, 28, 28))
    assert len(maps) == 10 and maps[0].shape == (8, 50, 50)
    heads = explain.cls_attention(maps, grid=7)
    assert heads.shape == (8, 7, 7)
    torch.testing.assert_close(heads.sum((1, 2)), 1 - maps[-1][:, 0, 0])  # [CLS]'s row, less its self-attention
    rollout = explain.attention_rollout(maps, grid=7)
    assert rollout.shape == (7, 7) and (rollout >= 0).all() and rollout.sum() < 1


def test_rollout_of_identity_attention_stays_on_cls():
    eye = [torch.eye(5).expand(2, 5, 5)] * 3
    assert explain.attention_rollout(eye, grid=2).abs().sum() == 0


def test_confusion_matrix_rows_are_true_classes():
    pred, labels = torch.tensor([0, 1, 1, 2, 0]), torch.tensor([0, 1, 2, 2, 1])
    assert confusion_matrix(pred, labels, 3).tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]


def test_a_variant_is_scored_on_the_validation_split():
    data = load_data(DataConfig(val_fraction=0.2, per_class=40, classes=(0, 1, 2)))
    rows = sweep.run_sweep([sweep.Variant("tiny", {"patch_size": 14, "dim": 16, "mlp_dim": 16})], data, epochs=1,
                           out=io.StringIO())  # fmt: skip
    assert rows[0]["variant"] == "tiny" and rows[0]["patch"] == 14 and rows[0]["dim"] == 16
    assert 0 <= rows[0]["val_accuracy"] <= 1 and rows[0]["params"] > 0


def test_smoothing_floor_is_the_loss_of_a_perfect_model_on_smoothed_targets():
    eps, k = 0.1, 6
    target = torch.full((k,), eps / k)
    target[0] += 1 - eps
    best = torch.nn.functional.cross_entropy(target.log()[None], torch.tensor([0]), label_smoothing=eps)
    assert smoothing_floor(eps, k) == pytest.approx(best.item(), abs=1e-6)
    assert smoothing_floor(0.0, k) == 0.0


def test_position_ablation_scores_three_variants_and_restores_the_embeddings(quick):
    model = build_model(fit_to_data(get_preset("fast").model, 6), seed=0).eval()
    before = model.pos_embedding.detach().clone()
    accuracy = explain.position_ablation(model, quick)
    assert set(accuracy) == {"intact", "shuffled among patches", "zeroed"}
    assert all(0 <= a <= 1 for a in accuracy.values())
    assert torch.equal(model.pos_embedding, before)


def test_equation_shapes_follow_the_paper():
    model = build_model(get_preset("fast").model, seed=0)
    lines = explain.equation_shapes(model, torch.randn(2, 1, 28, 28)).splitlines()
    assert lines[1].endswith("(2, 49, 80)") and lines[3].endswith("(2, 50, 64)") and lines[-1].endswith("(2, 6)")


def test_torchinfo_units_read_as_words():
    table = render(summarize(build_model(get_preset("fast").model)))
    assert "Total mult-adds (millions):" in table and "Units." not in table


def test_benchmark_comparison_reads_the_shipped_results():
    table = results.comparison(["fast (default)", "CNN baseline (fast recipe, 30 ep)"])
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    fast = [results.benchmark(s, ["fast (default)"])[0] for s in results.BENCHMARK_SETS]
    seconds = " / ".join(f"{r['seconds']:.0f}" for r in fast)
    accuracy = f"| {fast[0]['mean_accuracy']:.1%} ± {fast[0]['std_accuracy']:.1%} |"
    assert len(rows) == 3 and accuracy in rows[1] and rows[1].endswith(f" | 75 | {seconds} |"), rows
    assert rows[0].count("|") == len(results.BENCHMARK_SETS) + 4, rows[0]


def test_q9_answer_reads_the_checkpoint(quick, tmp_path):
    import io

    from labkit.checkpoint import load_checkpoint
    from labkit.run import train_run
    from labkit.settings import RunConfig

    run = train_run(quick, RunConfig(epochs=1, student_id="q9", outputs=tmp_path), out=io.StringIO(), progress=False)
    text = answers.final_accuracy(load_checkpoint(run.path), 1234, baseline=0.0)
    assert f"{run.test_accuracy:.2%}" in text and "1,234 parameters" in text and "training accuracy" in text


def test_q6_position_answer_follows_the_drop():
    used = answers.position_use({"intact": 0.98, "shuffled among patches": 0.91, "zeroed": 0.95})
    assert "reads where each patch came from" in used and "shuffled among patches, it loses 7.0 points" in used
    unused = answers.position_use({"intact": 0.98, "shuffled among patches": 0.975, "zeroed": 0.97})
    assert "not from where they are" in unused and "-1.0 points" in unused


def test_confusion_summary_names_the_weakest_class_and_every_tied_mistake():
    matrix = torch.tensor([[8, 1, 1], [0, 9, 1], [0, 1, 9]])
    text = confusion_summary(matrix, ["a", "b", "c"])
    assert text.startswith("4 of 30 test images") and "Weakest: a (80.0%)" in text
    assert "a taken for b; a taken for c; b taken for c; c taken for b (1 image each)" in text
    assert "no class is confused" in confusion_summary(torch.eye(3, dtype=torch.long), ["a", "b", "c"])


def test_attention_on_content_compares_the_bright_patches_share_with_an_even_one():
    image = torch.zeros(1, 8, 8, dtype=torch.uint8)
    image[0, :4, :4] = 255  # one bright patch of four
    on_it = torch.tensor([[0.7, 0.1], [0.1, 0.1]])
    assert "70% of the [CLS] token's patch attention on the 25% of patches" in explain.attention_on_content(
        image, on_it, 4
    )
    assert "leans towards the image's content" in explain.attention_on_content(image, on_it, 4)
    assert "does not single out" in explain.attention_on_content(image, torch.full((2, 2), 0.25), 4)
    assert "background" in explain.attention_on_content(image, torch.tensor([[0.1, 0.3], [0.3, 0.3]]), 4)


def test_candidates_table_is_ranked_by_the_worse_set_and_spread_reads_the_benchmark():
    text = results.candidates()
    lines = [line for line in text.splitlines() if line.startswith("| ")][1:]
    worse = [float(line.rsplit("|", 2)[1].strip().rstrip("%")) for line in lines]
    assert len(lines) >= 2 and worse == sorted(worse, reverse=True)
    low, high = results.spread()
    assert 0 <= low <= high < 0.05


def test_the_position_reading_tells_a_layout_put_in_from_one_learned():
    from dataclasses import replace

    config = fit_to_data(get_preset("reference").model, 6)
    random_start, table_start = build_model(config, 0), build_model(replace(config, sincos_positions=True), 0)
    learned = build_model(replace(config, sincos_positions=True), 0)  # stands for a model that learned the layout

    def maps(trained, untrained):
        return [explain.position_similarity(trained), explain.position_similarity(untrained),
                explain.position_similarity(trained, subtract=untrained)]  # fmt: skip

    put_in = explain.position_summary(dict(zip("abc", maps(table_start, table_start), strict=True)), 0.0)
    assert "a prior put in, not learned" in put_in and "still more alike" in put_in
    with torch.no_grad():
        # a random start that grew the table: the layout, three times its size, over where it started
        learned.pos_embedding[0, 1:] = 3 * learned.pos_embedding[0, 1:] + random_start.pos_embedding[0, 1:]
    grown = explain.position_summary(dict(zip("abc", maps(learned, random_start), strict=True)), 1.0)
    assert "training taught the embeddings some of the 2-D layout" in grown
    flat = explain.position_summary(dict(zip("abc", maps(random_start, random_start), strict=True)), 0.0)
    assert "no 2-D layout was learned here" in flat
