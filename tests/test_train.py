"""The training loop: the lab's log format, learning, determinism, the schedule."""

import io
import re
from dataclasses import replace

import pytest
import torch

from labkit.data import LabData, Split
from labkit.models import build_model
from labkit.presets import get_preset
from labkit.train import TrainConfig, fit, make_optimizer


def small(data: LabData, n: int) -> LabData:
    """The first ``n`` training images, scored on themselves."""
    part = Split(data.train.x[:n], data.train.y[:n])
    return replace(data, train=part, test=part)


def test_fit_prints_the_labs_log_and_returns_the_history(builtin, lab_log):
    out = io.StringIO()
    config = replace(get_preset("fast").train, epochs=2, log_every=10)
    history = fit(build_model(get_preset("fast").model, 0), builtin, config, out=out, progress=False)
    lab_log(out.getvalue(), epochs=2, steps=20, log_every=10)
    assert len(history.train_loss) == len(history.eval_loss) == len(history.eval_accuracy) == 2
    last = re.findall(r"Accuracy: ([\d.]+)%", out.getvalue())[-1]
    assert last == f"{history.final_accuracy * 100:.2f}"
    assert history.seconds > 0


def test_a_short_fit_overfits_64_images(builtin):
    data = small(builtin, 64)
    config = TrainConfig(epochs=40, lr=2e-3, warmup=0.025, label_smoothing=0.0, augment="none", weight_decay=0)
    history = fit(build_model(get_preset("fast").model, 0), data, config, out=io.StringIO(), progress=False)
    assert history.final_accuracy >= 0.95


def test_same_seed_same_weights_other_seed_other_weights(builtin):
    data = small(builtin, 128)
    config = replace(get_preset("fast").train, epochs=2)

    def weights(seed: int) -> torch.Tensor:
        model = build_model(get_preset("fast").model, seed)
        fit(model, data, config, seed=seed, out=io.StringIO(), progress=False)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    first = weights(0)
    assert torch.equal(first, weights(0))
    assert not torch.equal(first, weights(1))


def learning_rates(config: TrainConfig, steps: int) -> list[float]:
    model = torch.nn.Linear(2, 2)
    optimizer, scheduler = make_optimizer(model, config, steps)
    rates = []
    for _ in range(config.epochs * steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_warmup_then_cosine_and_the_references_constant_rate():
    rates = learning_rates(TrainConfig(epochs=10, lr=1e-3, warmup=0.2), steps=10)
    assert rates[0] < rates[10] and max(rates) == pytest.approx(1e-3, rel=0.01)
    assert rates.index(max(rates)) in (19, 20)
    assert rates[-1] < 1e-5 and all(a >= b for a, b in zip(rates[20:], rates[21:], strict=False))
    reference = learning_rates(get_preset("reference").train, steps=10)
    assert set(reference) == {3e-4}
    assert isinstance(make_optimizer(torch.nn.Linear(2, 2), get_preset("reference").train, 10)[0], torch.optim.Adam)
