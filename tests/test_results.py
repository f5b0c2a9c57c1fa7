"""The lab benchmark's summary that ships with labkit, as Question 7 quotes it."""

import pytest

from labkit.notebook import results
from labkit.presets import PRESETS


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_has_a_benchmark_row_on_each_set(name):
    rows = results.benchmark(name)
    assert list(rows) == list(results.SETS)
    for row in rows.values():
        assert 0 < row["mean_accuracy"] <= 1 and 0 <= row["std_accuracy"] < 0.1 and int(row["seeds"]) >= 1


def test_a_presets_effect_is_labelled_as_the_benchmarks_and_names_the_labs_presets_beside_it():
    text = results.preset_effect("hybrid")
    assert text.startswith("not measured on this data; the lab benchmark on its sets (digits / clothes / textures, ")
    assert [part.split("`")[1] for part in text.split(": ", 1)[1].split(", ")] == ["hybrid", "fast", "reference"]
    assert results.accuracies("fast") in text and results.accuracies("fast").count(" / ") == 2
    assert text.count("`fast`") == 1 == results.preset_effect("fast").count("`fast`")


def test_on_the_built_in_data_the_benchmarks_numbers_are_this_datas():
    text = results.preset_effect("fast", builtin=True)
    assert text.startswith("the lab benchmark on this data and split (3 seeds): `fast` ")
    assert f"`reference` {results.benchmark('reference')['digits']['mean_accuracy']:.1%}" in text and "/" not in text
