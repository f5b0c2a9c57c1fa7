"""The benchmark's stored results against the tools that made them: the sweep tables hold every variant the sweep
runs, the default is the candidate and the prior the preset ships, and the sets are what they claim."""

from pathlib import Path

import pytest
import torch
from candidates import CANDIDATES, standard_error, verdict
from full_sweep import COLUMNS, FULL_SWEEP
from priors import DEFAULT, settings
from tables import candidates, read

from labkit.models import build_model, count_parameters
from labkit.presets import get_preset


@pytest.mark.parametrize("name", ["sweep.csv", "sweep_hard.csv"])
def test_the_stored_sweep_tables_hold_every_variant_of_the_full_sweep(name):
    table = read(name)
    assert [r["variant"] for r in table] == [v.name for v in FULL_SWEEP]
    assert set(table[0]) == set(COLUMNS)
    assert all(0 < float(r["val_accuracy"]) <= 1 and float(r["seconds"]) > 0 for r in table)
    sizes = ("dim", "depth", "heads", "patch", "mlp_dim", "params")
    assert all(r[k].isdigit() and int(r[k]) > 0 for r in table for k in sizes), "a row's columns are shifted"


def test_the_stored_default_is_the_candidate_marked_and_no_candidate_beats_it_beyond_noise():
    rows = read("candidates.csv")
    assert [r["candidate"] for r in rows] == list(CANDIDATES)
    defaults = [r for r in rows if r["default"] == "True"]
    assert len(defaults) == 1, f"candidates.csv marks {len(defaults)} defaults"
    default = defaults[0]
    fast = get_preset("fast")
    assert int(default["params"]) == count_parameters(build_model(fast.model))
    assert f"{fast.train.epochs} epochs" in default["candidate"]
    assert f"| **{default['candidate']} (default)** |" in "\n".join(candidates())
    assert "a tie" in verdict(rows) or "the default leads" in verdict(rows), verdict(rows)


def row(name, digits, large, std, default=False):
    return {
        "candidate": name,
        "default": str(default),
        "params": "1",
        "worse_mean": str(min(digits, large)),
        "builtin_mean": str(digits),
        "builtin_std": "0.01",
        "builtin_seeds": "5",
        "hard_mean": "0.8",
        "hard_std": "0.01",
        "hard_seeds": "5",
        "hard_large_mean": str(large),
        "hard_large_std": str(std),
        "hard_large_seeds": "4",
    }


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


def test_the_prior_marked_default_is_the_one_the_fast_preset_ships():
    rows = read("priors_summary.csv")
    defaults = [r["variant"] for r in rows if r["default"] == "True"]
    assert defaults == [DEFAULT], "rerun benchmarks/priors.py --table"
    config, changes, recipe, ema = settings(DEFAULT)
    fast = get_preset("fast")
    locality = {k: v for k, v in changes.items() if v} == {"mimetic_init": True, "sincos_positions": True}
    assert (config.init, locality, recipe, ema) == ("locality", True, fast.train, 0.0)
