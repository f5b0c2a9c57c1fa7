"""Checkpoints: round trip, the overwrite rule, and safe loading of whatever a file holds."""

import io
import os
import zipfile

import pytest
import torch

from labkit.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from labkit.errors import LabError
from labkit.handin.evaluation import evaluate_checkpoint
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
    assert set(checkpoint["versions"]) >= {"labkit", "torch", "python"}
    model = model_from_checkpoint(checkpoint)
    x = next(iter(builtin.batches("test")))[0]
    torch.testing.assert_close(model(x), run.model(x), rtol=0, atol=0)
    result = evaluate_checkpoint(run.path)
    assert result.accuracy == checkpoint["metrics"]["test_accuracy"] == run.history.final_accuracy
    assert result.warnings == []


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


@pytest.mark.hostile
@pytest.mark.parametrize("content", [b"", b"my own notes, not a checkpoint"])
def test_an_empty_or_foreign_file_at_the_path_is_kept_and_the_model_saved(run, tmp_path, content):
    path = tmp_path / "alice_vit.pth"
    path.write_bytes(content)
    save_checkpoint(load_checkpoint(run.path), path, out=io.StringIO())
    assert load_checkpoint(path)["student_id"] == "alice"
    assert [p.read_bytes() for p in tmp_path.glob("alice_vit.*.pth")] == [content]


@pytest.mark.hostile
@pytest.mark.parametrize("armed, named", [("path.touch", r"[\w.]+"), ("os.system", r"\w+\.system")])
def test_a_pickle_that_would_run_code_is_refused(tmp_path, runs_code, armed, named):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_vit.pth"

    class RunsShell:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model_state": runs_code(marker) if armed == "path.touch" else RunsShell()}, path)
    with pytest.raises(LabError, match=rf"refused: it carries pickled code or objects \({named}\), which were not run"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the unsafe load, to show the file really is armed
    assert marker.exists()


@pytest.mark.hostile
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


@pytest.mark.hostile
@pytest.mark.parametrize("kind, message", [("folder", "is a folder, not a file"), ("fifo", "is a named pipe")])
def test_a_folder_or_pipe_named_pth_says_what_it_is(tmp_path, kind, message):
    path = tmp_path / "s1_vit.pth"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    with pytest.raises(LabError, match=message):
        load_checkpoint(path)


@pytest.mark.hostile
def test_a_compressed_entry_or_a_tensor_bigger_than_its_shape_is_refused(run, tmp_path):
    good = load_checkpoint(run.path)
    path = tmp_path / "packed_vit.pth"
    torch.save(good, path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "z_vit.pth", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    with pytest.raises(LabError, match="compressed entry .* which torch.save never writes"):
        load_checkpoint(tmp_path / "z_vit.pth")
    hidden = torch.zeros(1_000_000)  # the shape says 2 numbers, the storage carries a million
    state = good["model_state"] | {"cls_token": hidden[:2]}
    torch.save(good | {"model_state": state}, tmp_path / "view_vit.pth")
    with pytest.raises(LabError, match="carries 4,000,000 bytes, more than its shape needs"):
        load_checkpoint(tmp_path / "view_vit.pth")


def test_a_shape_mismatch_names_one_parameter_in_a_short_line(run):
    checkpoint = load_checkpoint(run.path)
    checkpoint["model_config"] = checkpoint["model_config"] | {"dim": 32, "depth": 2}
    with pytest.raises(LabError, match="do not fit its 'fast' model .*another architecture") as err:
        model_from_checkpoint(checkpoint)
    message = str(err.value)
    assert len(message) < 400 and "shapes differ, e.g." in message and "unexpected, e.g." in message


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


def test_a_checkpoint_of_another_labkit_version_is_refused_in_one_line(run, tmp_path):
    path = tmp_path / "old_vit.pth"
    torch.save(load_checkpoint(run.path) | {"version": 2}, path)
    with pytest.raises(LabError, match=r"saved by another labkit version \(2\); retrain it"):
        load_checkpoint(path)


def _set(key: str, value):
    """A mutation setting one field, dotted for nested ones (``data.config.per_class``)."""

    def mutate(checkpoint: dict) -> None:
        *path, last = key.split(".")
        target = checkpoint
        for part in path:
            target = target[part]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value

    return mutate


def _sparse(checkpoint: dict) -> None:
    checkpoint["model_state"]["cls_token"] = checkpoint["model_state"]["cls_token"].to_sparse()


def _on_meta(checkpoint: dict) -> None:
    checkpoint["model_state"] = {k: v.to("meta") for k, v in checkpoint["model_state"].items()}


MALFORMED = {
    "classes is an int": (_set("classes", 5), "classes is an int"),
    "classes is None": (_set("classes", None), "classes is None"),
    "class names are not text": (_set("classes", [1, 2, 3, 4, 5, 6]), "classes holds names that are not text"),
    "image_size a float": (_set("model_config.image_size", 28.0), "image_size=28.0 is not a whole number"),
    "dim a float": (_set("model_config.dim", 64.0), "dim=64.0 is not a whole number"),
    "heads a float": (_set("model_config.heads", 4.5), "heads=4.5 is not a whole number"),
    "kind a list": (_set("model_config.kind", [1]), "unknown model kind"),
    "data classes text": (_set("data.config.classes", "012"), "classes='012' is not"),
    "data classes an int": (_set("data.config.classes", 5), "classes=5 is not"),
    "per_class text": (_set("data.config.per_class", "5"), "per_class='5' is not"),
    "per_class a float": (_set("data.config.per_class", 2.5), "per_class=2.5 is not"),
    "test_fraction text": (_set("data.config.test_fraction", "0.3"), "test_fraction='0.3' is not"),
    "split_seed huge": (_set("data.config.split_seed", 2**70), "split_seed 1180591620717411303424 must be"),
    "split_seed text": (_set("data.config.split_seed", "a"), "split_seed='a' is not"),
    "data config unknown field": (_set("data.config.colour", True), "its data config does not fit"),
    "mean text": (_set("normalization.mean", "x"), "normalization is not a finite mean"),
    "mean a tensor": (_set("normalization.mean", torch.tensor(5.0)), "normalization is not a finite mean"),
    "std zero": (_set("normalization.std", 0.0), "normalization is not a finite mean and a positive std"),
    "an int tensor name": (lambda c: c["model_state"].__setitem__(7, torch.zeros(1)), "a tensor is named by an int"),
    "a sparse tensor": (_sparse, "tensor cls_token is a sparse_coo cpu tensor, not a dense CPU one"),
    "meta tensors": (_on_meta, "is a strided meta tensor, not a dense CPU one"),
    "seed a bool": (_set("seed", True), "seed is a bool"),
    "data a list": (_set("data", []), "data is a list"),
}


@pytest.mark.hostile
@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_field_is_one_line_naming_it(run, tmp_path, name):
    """Every stored field is checked for its type before anything reads it (mutations of a real checkpoint)."""
    checkpoint = torch.load(run.path, weights_only=True)
    mutate, message = MALFORMED[name]
    mutate(checkpoint)
    path = tmp_path / "s1_vit.pth"
    torch.save(checkpoint, path)
    with pytest.raises(LabError) as info:
        evaluate_checkpoint(path, "builtin")
    assert message in str(info.value) and "\n" not in str(info.value)
