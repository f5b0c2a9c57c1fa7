"""Checkpoints: round trip, the overwrite rule, atomic writes, and safe loading."""

import io

import pytest
import torch

from labkit.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from labkit.errors import LabError
from labkit.evaluation import evaluate_checkpoint
from labkit.models import build_model
from labkit.presets import get_preset
from labkit.run import train_run
from labkit.settings import RunConfig


@pytest.fixture(scope="module")
def run(quick, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return train_run(
        quick, RunConfig(preset="fast", epochs=1, student_id="alice", outputs=out), out=io.StringIO(), progress=False
    )


def test_round_trip_gives_the_same_logits_and_accuracy(run, builtin):
    checkpoint = load_checkpoint(run.path)
    assert checkpoint["student_id"] == "alice" and checkpoint["preset"] == "fast"
    assert checkpoint["classes"] == builtin.classes
    assert checkpoint["data"]["test_fingerprint"] == builtin.test_fingerprint
    assert checkpoint["data"]["config"]["split_seed"] == 0 and "split_seed" not in checkpoint["data"]
    assert set(checkpoint["versions"]) >= {"labkit", "torch", "torchvision"}
    model = model_from_checkpoint(checkpoint)
    x = next(iter(builtin.batches("test")))[0]
    torch.testing.assert_close(model(x), run.model(x), rtol=0, atol=0)
    result = evaluate_checkpoint(run.path)
    assert result.accuracy == checkpoint["metrics"]["test_accuracy"] == run.history.final_accuracy
    assert result.warnings == []


def test_reuse_loads_the_same_run_instead_of_training(run, quick):
    out = io.StringIO()
    again = train_run(
        quick,
        RunConfig(preset="fast", epochs=1, student_id="alice", outputs=run.path.parent),
        reuse=True,
        out=out,
        progress=False,
    )
    assert not again.trained and out.getvalue().startswith(f"✓ Loaded {run.path}")
    assert again.test_accuracy == run.test_accuracy


def test_same_run_is_replaced_a_different_run_is_kept(run, tmp_path):
    path = tmp_path / "alice_vit.pth"
    checkpoint = load_checkpoint(run.path)
    save_checkpoint(checkpoint, path, out=io.StringIO())
    out = io.StringIO()
    save_checkpoint(checkpoint, path, out=out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice_vit.pth"]
    assert out.getvalue() == f"✓ Model saved as {path}\n"

    other = checkpoint | {"run_fingerprint": "another run", "seed": 7}
    out = io.StringIO()
    save_checkpoint(other, path, out=out)
    kept = [p for p in tmp_path.iterdir() if p.name != "alice_vit.pth"]
    assert len(kept) == 1 and kept[0].name.startswith("alice_vit.") and kept[0].suffix == ".pth"
    assert f"held a different run; kept it as {kept[0]}" in out.getvalue()
    assert load_checkpoint(kept[0])["run_fingerprint"] == checkpoint["run_fingerprint"]
    assert load_checkpoint(path)["seed"] == 7


def test_a_users_own_file_at_the_path_is_kept(run, tmp_path):
    path = tmp_path / "alice_vit.pth"
    path.write_text("my notes, not a checkpoint")
    save_checkpoint(load_checkpoint(run.path), path, out=io.StringIO())
    kept = [p for p in tmp_path.iterdir() if p != path]
    assert [p.read_text() for p in kept] == ["my notes, not a checkpoint"]


def test_a_crash_while_saving_leaves_the_old_file_and_no_temp_file(run, tmp_path, monkeypatch):
    path = tmp_path / "alice_vit.pth"
    checkpoint = load_checkpoint(run.path)
    save_checkpoint(checkpoint, path, out=io.StringIO())
    before = path.read_bytes()

    def crash(obj, f):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(checkpoint, path, out=io.StringIO())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["alice_vit.pth"]


def test_a_pickle_that_would_run_code_is_refused(tmp_path, runs_code):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_vit.pth"
    torch.save({"model_state": runs_code(marker)}, path)
    with pytest.raises(LabError, match="refused: it carries pickled code or objects"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the unsafe load, to show the file really is armed
    assert marker.exists()


def test_corrupt_truncated_and_foreign_files_are_clear_errors(run, tmp_path):
    truncated = tmp_path / "t.pth"
    truncated.write_bytes(run.path.read_bytes()[:1000])
    with pytest.raises(LabError, match="is not a readable checkpoint"):
        load_checkpoint(truncated)
    garbage = tmp_path / "g.pth"
    garbage.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(LabError, match="is not a readable checkpoint"):
        load_checkpoint(garbage)
    foreign = tmp_path / "f.pth"
    torch.save({"weights": [1, 2, 3]}, foreign)
    with pytest.raises(LabError, match="neither a labkit checkpoint nor a state dict"):
        load_checkpoint(foreign)
    with pytest.raises(LabError, match="not found"):
        load_checkpoint(tmp_path / "missing.pth")


def test_a_checkpoint_of_another_shape_is_a_clear_error(run, tmp_path):
    checkpoint = load_checkpoint(run.path)
    checkpoint["model_config"] = checkpoint["model_config"] | {"dim": 32}
    with pytest.raises(LabError, match="do not fit its 'fast' model .*another architecture"):
        model_from_checkpoint(checkpoint)


def test_a_bare_reference_state_dict_loads_as_the_reference_preset(tmp_path, builtin):
    reference = build_model(get_preset("reference").model, seed=0).eval()
    path = tmp_path / "bob_vit.pth"
    torch.save(reference.state_dict(), path)  # what the lab's reference code saves
    checkpoint = load_checkpoint(path)
    assert (checkpoint["preset"], checkpoint["student_id"]) == ("reference", "bob")
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(model_from_checkpoint(checkpoint)(x), reference(x), rtol=0, atol=0)
    with pytest.raises(LabError, match="stores no data settings .*pass --data"):
        evaluate_checkpoint(path)
    assert 0 <= evaluate_checkpoint(path, "builtin").accuracy <= 1


def test_weights_only_loading_is_used(run, monkeypatch):
    seen = {}
    original = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(run.path)
    assert seen.get("weights_only") is True


def test_a_version_1_checkpoint_still_loads_with_the_same_weights(run, tmp_path, quick):
    """Version 1 kept SPT's LayerNorm and Linear under to_patch_embedding.to_tokens and split_seed twice."""
    checkpoint = load_checkpoint(run.path)
    v1_names = {
        "to_patch_embedding.1.": "to_patch_embedding.to_tokens.0.",
        "to_patch_embedding.2.": "to_patch_embedding.to_tokens.1.",
    }
    old_state = {}
    for name, tensor in checkpoint["model_state"].items():
        prefix = next((p for p in v1_names if name.startswith(p)), None)
        old_state[name if prefix is None else v1_names[prefix] + name.removeprefix(prefix)] = tensor
    assert old_state.keys() != checkpoint["model_state"].keys()
    old = checkpoint | {"version": 1, "model_state": old_state}
    old["data"] = checkpoint["data"] | {"split_seed": 0}
    path = tmp_path / "old_vit.pth"
    torch.save(old, path)
    loaded = load_checkpoint(path)
    assert loaded["version"] == 2 and "split_seed" not in loaded["data"]
    x = next(iter(quick.batches("test")))[0]
    torch.testing.assert_close(model_from_checkpoint(loaded)(x), run.model(x), rtol=0, atol=0)


def test_a_checkpoint_saved_under_the_presets_old_name_loads_evaluates_and_grades(run, tmp_path):
    """The reference preset was called "seed": such files still load, score and grade, as "reference"."""
    from labkit.grading import grade

    old = load_checkpoint(run.path) | {"preset": "seed"}
    path = tmp_path / "alice_vit.pth"
    torch.save(old, path)
    assert load_checkpoint(path)["preset"] == "reference"
    assert evaluate_checkpoint(path).accuracy == run.test_accuracy
    [row] = grade([path], baseline=0.0)
    assert (row.preset, row.result, row.accuracy) == ("reference", "PASS", run.test_accuracy)
