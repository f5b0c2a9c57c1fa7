"""Scores and the one statistic the report uses: two models compared on the same test images (McNemar)."""

import pytest
import torch

from labkit.metrics import Paired, confusion_matrix, correct, paired, smoothing_floor


def test_mcnemar_is_the_exact_binomial_test_on_the_images_where_two_models_disagree():
    assert Paired(15, 0, 540).p == pytest.approx(2 * 0.5**15)  # the held-back textures' 15-0 split
    assert Paired(6, 2, 540).p == pytest.approx(2 * (1 + 8 + 28) / 256)
    assert Paired(3, 3, 540).p == 1.0 and Paired(0, 0, 540).p == 1.0
    assert Paired(6, 2, 540).difference == pytest.approx(4 / 540)


@pytest.mark.parametrize("only_a, only_b", [(a, b) for a in range(0, 25, 3) for b in range(0, 25, 4)])
def test_the_paired_interval_excludes_zero_exactly_when_mcnemar_rejects(only_a, only_b):
    comparison = Paired(only_a, only_b, 540)
    low, high = comparison.interval()
    assert low <= comparison.difference <= high
    assert (low > 0 or high < 0) == (comparison.p < 0.05)


def test_the_paired_interval_matches_clopper_pearson_on_the_disagreements():
    # Clopper-Pearson for 6 of 8 (scipy.stats.beta.ppf(0.025, 6, 3), beta.ppf(0.975, 7, 2)), scaled to 540 images.
    low, high = Paired(6, 2, 540).interval()
    assert low == pytest.approx(8 / 540 * (2 * 0.3491442 - 1), abs=1e-6)
    assert high == pytest.approx(8 / 540 * (2 * 0.9681460 - 1), abs=1e-6)


def test_paired_counts_which_images_only_one_model_got_right():
    a, b = torch.tensor([1, 1, 0, 0, 1], dtype=torch.bool), torch.tensor([1, 0, 1, 0, 0], dtype=torch.bool)
    assert paired(a, b) == Paired(2, 1, 5)


def test_correct_marks_each_image_the_model_gets_right_in_order():
    class Echo(torch.nn.Module):
        def forward(self, x):
            return x

    batches = [(torch.eye(3), torch.tensor([0, 2, 2]))]
    assert correct(Echo(), batches).tolist() == [True, False, True]


def test_confusion_matrix_rows_are_true_classes():
    pred, labels = torch.tensor([0, 1, 1, 2, 0]), torch.tensor([0, 1, 2, 2, 1])
    assert confusion_matrix(pred, labels, 3).tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]


def test_smoothing_floor_is_the_loss_of_a_perfect_model_on_smoothed_targets():
    eps, k = 0.1, 6
    target = torch.full((k,), eps / k)
    target[0] += 1 - eps
    best = torch.nn.functional.cross_entropy(target.log()[None], torch.tensor([0]), label_smoothing=eps)
    assert smoothing_floor(eps, k) == pytest.approx(best.item(), abs=1e-6)
    assert smoothing_floor(0.0, k) == 0.0
