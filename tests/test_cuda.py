"""The CUDA path (Colab, a lab GPU): the same numbers as on the CPU, and a GPU run that leaves nothing on the GPU.

Skipped where no CUDA GPU is found, as on CI; on a GPU machine run `pytest tests/test_cuda.py`.
"""

import pytest
import torch

from labkit.checkpoint import load_checkpoint
from labkit.handin.evaluation import evaluate_checkpoint
from labkit.models import build_model, fit_to_data
from labkit.notebook.explain import attention_maps
from labkit.presets import get_preset
from labkit.run import train_run
from labkit.settings import RunConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@pytest.mark.parametrize("paper", [False, True], ids=["fast", "fast as the paper's ViT"])
def test_the_gpu_computes_what_the_cpu_computes(paper):
    config = get_preset("fast").model
    model = build_model(fit_to_data(config.paper() if paper else config, 6), seed=0)
    x = torch.randn(8, 1, 28, 28)
    expected = model(x)
    expected.square().sum().backward()
    expected_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)

    model.cuda()
    out = model(x.cuda())
    out.square().sum().backward()
    torch.testing.assert_close(out.cpu(), expected, atol=1e-4, rtol=1e-4)
    for p, grad in zip(model.parameters(), expected_grads, strict=True):
        torch.testing.assert_close(p.grad.cpu(), grad, atol=1e-4, rtol=1e-3)
    maps = attention_maps(model, x[0].cuda())  # the explicit weights work on the GPU too
    assert maps[0].is_cuda
    torch.testing.assert_close(maps[0].sum(-1).cpu(), torch.ones_like(maps[0].sum(-1).cpu()))


def test_a_gpu_run_stores_the_cpus_score_so_a_cpu_rescore_gives_it_back_exactly(builtin, tmp_path):
    run = train_run(builtin, RunConfig(epochs=2, outputs=tmp_path), device="cuda", progress=False)
    assert all(not p.is_cuda for p in run.model.parameters())  # the notebooks go on with CPU tensors
    saved = load_checkpoint(run.path)
    assert all(not t.is_cuda for t in saved["model_state"].values())
    rescored = evaluate_checkpoint(run.path)
    assert rescored.accuracy == run.test_accuracy and not rescored.warnings
