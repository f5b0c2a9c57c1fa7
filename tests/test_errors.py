"""The one error a user sees, and the check of a config's field types that every config makes: a config read from a
file (a checkpoint, a settings cell) that holds a value of the wrong type is refused in one line naming the field."""

import math
from dataclasses import dataclass

import pytest

from labkit.cnn import CNNConfig
from labkit.data import DataConfig
from labkit.errors import LabError, check_fields
from labkit.train import TrainConfig
from labkit.vit import ViTConfig

VIT = {"patch_size": 4, "dim": 64, "depth": 1, "heads": 2, "dim_head": 8, "mlp_dim": 8}


@dataclass(frozen=True)
class Example:
    count: int
    rate: float
    flag: bool
    name: str
    sizes: tuple[int, ...] | None = None


def test_check_fields_names_the_first_field_of_the_wrong_type_and_what_it_should_be():
    check_fields(Example(3, 1, False, "a", (1, 2)), "example")  # an int is a number; None and tuples of ints pass
    check_fields(Example(3, 0.5, True, "a" * 100), "example")
    for bad, message in [
        (Example(True, 0.5, False, "a"), "count=True is not a whole number"),
        (Example(3.0, 0.5, False, "a"), "count=3.0 is not a whole number"),
        (Example(3, math.inf, False, "a"), "rate=inf is not a number"),
        (Example(3, "0.5", False, "a"), "rate='0.5' is not a number"),
        (Example(3, 0.5, 1, "a"), "flag=1 is not true or false"),
        (Example(3, 0.5, False, None), "name=None is not text"),
        (Example(3, 0.5, False, "a", (1, "2")), "sizes=(1, '2') is not a tuple of whole numbers or None"),
    ]:
        with pytest.raises(LabError) as err:
            check_fields(bad, "example")
        assert str(err.value) == f"invalid example: {message}"


def test_a_long_value_is_named_by_its_type_not_shown():
    with pytest.raises(LabError, match=r"^invalid example: name=a list is not text$"):
        check_fields(Example(3, 0.5, False, list(range(100))), "example")


@pytest.mark.hostile
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ViTConfig(**VIT | {"dim": True}), "invalid ViT config: dim=True is not a whole number"),
        (lambda: ViTConfig(**VIT | {"dropout": float("nan")}), "invalid ViT config: dropout=nan is not a number"),
        (lambda: ViTConfig(**VIT | {"init": None}), "invalid ViT config: init=None is not text"),
        (lambda: DataConfig(classes=(0, 1.5)), "invalid data config: classes=(0, 1.5) is not a tuple of whole numbers"),
        (lambda: DataConfig(source=3), "invalid data config: source=3 is not text"),
        (lambda: TrainConfig(lr="0.1"), "invalid training config: lr='0.1' is not a number"),
        (lambda: CNNConfig(widths=(32.5, 64)), "widths=(32.5, 64) is not a tuple of whole numbers"),
        (lambda: CNNConfig(features="128"), "features='128' is not a whole number"),
    ],
    ids=["vit-bool", "vit-nan", "vit-none", "data-float", "data-int", "train-text", "cnn-float", "cnn-text"],
)
def test_every_config_refuses_a_field_of_the_wrong_type_in_one_line(make, message):
    with pytest.raises(LabError) as err:
        make()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_notebook_shows_a_lab_error_as_its_one_line():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    result = shell.run_cell("from labkit.settings import RunConfig\nRunConfig(epochs=True)")
    assert isinstance(result.error_in_exec, LabError)
    assert result.error_in_exec._render_traceback_() == [
        "LabError: epochs=True: give a whole number of at least 1, or None for the preset's"
    ]
