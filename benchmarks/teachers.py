"""The ViT a CNN taught (issue 36): DeiT's distillation token and locality guidance, against the pure ViT and the CNN.

Each development set's held-out images are split per class into a selection half (A: layers and weight chosen on it)
and a judging half (B: every comparison). Jobs come from a plan (a JSON list of {kind, set, seed, ...}) and each
appends one JSON line to results/teachers.jsonl:
- ``teacher``: the lab's CNN preset, the teacher (its time is reported apart from the student's);
- ``cnn-same-minute``: the CNN trained for 50 epochs, about the pure ViT's minute;
- ``pure``: the fast preset's ViT; ``lg``: the same, taught by locality guidance (labkit.small_data; ``blocks`` and
  ``weight`` override the adopted ones for the selection runs); ``deit``: taught by DeiT's distillation token (below).

The selection runs (lg with other blocks or weights, seed 0) were made by the prototype of labkit.small_data, whose 1x1
alignment convolutions drew their starting weights before the run's seed was set instead of after.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from sets import DEVELOPMENT_SETS
from torch import nn

from labkit import small_data as teaching
from labkit.data import Split, load_data
from labkit.metrics import EVAL_BATCH, correct
from labkit.models import build_model, fit_to_data
from labkit.presets import get_preset
from labkit.train import fit, make_optimizer, seed_everything
from labkit.vit import ViT

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "teachers.jsonl"
TEACHERS = HERE / "results" / "teachers"  # the trained teachers, reused by every student of the same set and seed


def held_out_halves(name: str) -> tuple[Split, Split]:
    """The set's held-out images, split per class into a selection half (A) and a judging half (B)."""
    split = DEVELOPMENT_SETS[name][1]()
    g = torch.Generator().manual_seed(12345)
    a, b = [], []
    for c in split.y.unique():
        idx = (split.y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        a.append(idx[: len(idx) // 2])
        b.append(idx[len(idx) // 2 :])
    a, b = torch.cat(a), torch.cat(b)
    return Split(split.x[a], split.y[a]), Split(split.x[b], split.y[b])


class DistilledViT(nn.Module):
    """DeiT (Touvron et al., ICML 2021): the ViT with a distillation token after [CLS], learned against the teacher's
    hard labels; at test time the class and distillation heads' logits are averaged."""

    def __init__(self, vit: ViT):
        super().__init__()
        self.vit, d = vit, vit.config.dim
        self.dist_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.dist_position = nn.Parameter(torch.zeros(1, 1, d))
        self.head_dist = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, vit.config.num_classes))

    def no_weight_decay(self) -> set[str]:
        return {"vit.cls_token", "vit.pos_embedding", "dist_token", "dist_position"}

    def both(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.vit
        x = v.to_patch_embedding(img)
        b = x.shape[0]
        pos = torch.cat((v.pos_embedding[:, :1], self.dist_position, v.pos_embedding[:, 1:]), dim=1)
        x = torch.cat((v.cls_token.expand(b, -1, -1), self.dist_token.expand(b, -1, -1), x), dim=1) + pos
        x = v.transformer(v.dropout(x))
        return v.mlp_head(x[:, 0]), self.head_dist(x[:, 1])

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        cls, dist = self.both(img)
        return (cls + dist) / 2


def fit_deit(model: DistilledViT, teacher: nn.Module, data, recipe, seed: int) -> float:
    """DeiT's hard-label distillation: half the smoothed loss on the true labels, half on the teacher's."""
    seed_everything(seed)
    batches = data.batches("train", recipe.batch_size, recipe.augment, seed)
    optimizer, scheduler = make_optimizer(model, recipe, len(batches))
    smooth = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    start = time.perf_counter()
    for _ in range(recipe.epochs):
        model.train()
        for x, y in batches:
            cls, dist = model.both(x)
            with torch.no_grad():
                y_teacher = teacher(x).argmax(1)
            loss = 0.5 * smooth(cls, y) + 0.5 * F.cross_entropy(dist, y_teacher)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return time.perf_counter() - start


def accuracy(model: nn.Module, data, halves: tuple[Split, Split]) -> dict:
    model.eval()
    found = {}
    for half, split in zip("AB", halves, strict=True):
        right = correct(model, replace(data, test=split).batches("test", EVAL_BATCH))
        found[f"accuracy_{half}"] = round(right.float().mean().item(), 5)
    return found


def quiet_fit(model, data, recipe, seed, teacher=None) -> float:
    return fit(model, data, recipe, seed, eval_part=None, out=io.StringIO(), progress=False, teacher=teacher).seconds


def teacher_for(name: str, seed: int, data) -> tuple[nn.Module, float]:
    path = TEACHERS / f"{name}-{seed}.pt"
    p = get_preset("cnn")
    model = build_model(fit_to_data(p.model, len(data.classes)), seed)
    if path.exists():
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state"])
        return model.eval(), saved["seconds"]
    seconds = quiet_fit(model, data, p.train, seed)
    TEACHERS.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "seconds": seconds}, path)
    return model.eval(), seconds


def job(kind: str, name: str, seed: int, **options) -> dict:
    data, halves = load_data(DEVELOPMENT_SETS[name][0]()), held_out_halves(name)
    row, fast = {"kind": kind, "set": name, "seed": seed, **options}, get_preset("fast")
    if kind in ("teacher", "cnn-same-minute"):
        p = get_preset("cnn")
        if kind == "teacher":
            model, seconds = teacher_for(name, seed, data)
        else:
            model = build_model(fit_to_data(p.model, len(data.classes)), seed)
            seconds = quiet_fit(model, data, replace(p.train, epochs=50), seed)
        return row | accuracy(model, data, halves) | {"seconds": seconds}
    vit = build_model(fit_to_data(fast.model, len(data.classes)), seed)
    if kind == "pure":
        return row | {"seconds": quiet_fit(vit, data, fast.train, seed)} | accuracy(vit, data, halves)
    teacher, teacher_seconds = teacher_for(name, seed, data)
    if kind == "deit":
        vit = DistilledViT(vit)
        seconds = fit_deit(vit, teacher, data, fast.train, seed)
    else:
        teaching.GUIDED_BLOCKS = tuple(options.get("blocks", teaching.GUIDED_BLOCKS))
        recipe = replace(fast.train, guidance=options.get("weight", teaching.GUIDANCE))
        seconds = quiet_fit(vit, data, recipe, seed, teacher)
    return row | accuracy(vit, data, halves) | {"seconds": seconds, "teacher_seconds": teacher_seconds}


def key(row: dict) -> str:
    return json.dumps({k: v for k, v in sorted(row.items()) if not k.startswith(("accuracy", "seconds", "teacher"))})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plan", help="a JSON file: a list of jobs {kind, set, seed, ...}")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    done = {key(json.loads(line)) for line in RESULTS.read_text().splitlines()} if RESULTS.exists() else set()
    for spec in json.loads(Path(args.plan).read_text()):
        if key(spec) in done:
            continue
        spec = dict(spec)
        row = job(spec.pop("kind"), spec.pop("set"), spec.pop("seed"), **spec)
        with RESULTS.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
