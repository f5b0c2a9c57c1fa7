"""The tuning tools in benchmarks/ against the tables they shipped: the default is the candidate they chose, and
the notebook's sweep tables hold every variant the full sweep runs."""

from pathlib import Path

import pytest
import torch
from candidates import CANDIDATES, standard_error, verdict
from sweep import FULL_SWEEP

from labkit import results, sweep
from labkit.models import build_model, count_parameters
from labkit.presets import get_preset


@pytest.mark.parametrize("hard", [False, True])
def test_the_shipped_sweep_tables_hold_every_variant_of_the_full_sweep(hard):
    table = sweep.read_table(hard=hard)
    assert [r["variant"] for r in table] == [v.name for v in FULL_SWEEP]
    assert set(table[0]) == set(sweep.COLUMNS)
    assert all(0 < float(r["val_accuracy"]) <= 1 and float(r["seconds"]) > 0 for r in table)
    sizes = ("dim", "depth", "heads", "patch", "mlp_dim", "params")
    assert all(r[k].isdigit() and int(r[k]) > 0 for r in table for k in sizes), "a row's columns are shifted"


def test_the_shipped_default_is_the_candidate_marked_and_no_candidate_beats_it_beyond_noise():
    rows = results.read(results.CANDIDATES)
    assert [r["candidate"] for r in rows] == list(CANDIDATES)
    defaults = [r for r in rows if r["default"] == "True"]
    assert len(defaults) == 1, f"candidates.csv marks {len(defaults)} defaults"
    default = defaults[0]
    fast = get_preset("fast")
    assert int(default["params"]) == count_parameters(build_model(fast.model))
    assert f"{fast.train.epochs} epochs" in default["candidate"]
    assert f"**{default['candidate']} (default)**" in results.candidates()
    assert "a tie" in verdict(rows) or "the default leads" in verdict(rows), verdict(rows)


def row(name, digits, large, std, default=False):
    return {"candidate": name, "default": str(default), "params": "1", "worse_mean": str(min(digits, large)),
            "builtin_mean": str(digits), "builtin_std": "0.01", "builtin_seeds": "5", "hard_mean": "0.8",
            "hard_std": "0.01", "hard_seeds": "5", "hard_large_mean": str(large), "hard_large_std": str(std),
            "hard_large_seeds": "4"}  # fmt: skip


def test_the_verdict_reads_the_lead_in_standard_errors_of_the_worse_set():
    assert standard_error(row("A", 0.98, 0.887, 0.004)) == pytest.approx(0.004 / 2)  # clothes is worse: 4 seeds
    tied = verdict([row("A", 0.98, 0.887, 0.003, default=True), row("B", 0.98, 0.886, 0.003)])
    assert tied == "the default and B are within noise (+0.5 standard errors): a tie"
    clear = verdict([row("A", 0.98, 0.887, 0.003, default=True), row("B", 0.98, 0.877, 0.003)])
    assert clear == "the default leads B by +4.7 standard errors"
    behind = verdict([row("A", 0.98, 0.877, 0.003, default=True), row("B", 0.98, 0.887, 0.003)])
    assert behind == "the default trails B by -4.7 standard errors"


def test_the_texture_set_is_generated_the_same_every_time_with_six_balanced_classes(tmp_path):
    from sets import TEXTURE_CLASSES, textures

    from labkit.data import load_data

    first, second = textures(tmp_path / "a.npz", per_class=20), textures(tmp_path / "b.npz", per_class=20)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    data = load_data(first)
    assert data.classes == list(TEXTURE_CLASSES) and len(data.train) + len(data.test) == 120
    assert load_data(second).train.x.float().std() > 20, "textures, not flat images"


@pytest.mark.parametrize("name", ["digits", "clothes", "textures"])
def test_each_held_out_set_is_balanced_and_shares_no_image_with_the_benchmarks_splits(name):
    from sets import DEVELOPMENT_SETS, FASHION

    from labkit.data import load_data

    if name == "clothes" and not Path(FASHION).is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    config, held_out = DEVELOPMENT_SETS[name]
    data, images = load_data(config()), held_out()
    counts = torch.bincount(images.y, minlength=len(data.classes))
    assert len(images) >= 1200 and torch.all(counts == counts[0])
    seen = {bytes(x.numpy()) for part in (data.train, data.test) for x in part.x}
    assert not any(bytes(x.numpy()) in seen for x in images.x)


def test_the_default_loses_on_no_set_and_no_prior_that_loses_nowhere_beats_its_worse_set_beyond_noise():
    rows = results.read(results.PRIORS)
    defaults = [r for r in rows if r["default"] == "True"]
    assert len(defaults) == 1, f"priors.csv marks {len(defaults)} defaults: rerun benchmarks/priors.py --table"
    default, baseline = defaults[0], rows[0]
    assert all(results.errors_apart(default, baseline, s) >= -2 for s in results.PRIOR_SETS)
    safe = [r for r in rows if r["model"] == "vit"
            and all(results.errors_apart(r, baseline, s) >= -2 for s in results.PRIOR_SETS)]  # fmt: skip
    assert all(results.worse_set_lead(r, default) <= 2 for r in safe), [r["variant"] for r in safe]
