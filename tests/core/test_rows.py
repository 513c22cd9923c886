"""normalize_label / label_index: the one label-normalisation every reader uses (issue 8, case 6)."""

import math

import pytest

from zuoxiao.core.errors import ConfigError
from zuoxiao.core.rows import label_index, normalize_label


@pytest.mark.parametrize("value", [1, 1.0, "1", "1.0", " 1 ", "1.", "+1.0", b"1"])
def test_one_written_any_way_is_label_1(value):
    assert normalize_label(value) == "1"


@pytest.mark.parametrize("value", [True, "true", "True", "TRUE", " true "])
def test_true_written_any_way_is_label_true(value):
    assert normalize_label(value) == "true"


@pytest.mark.parametrize("value", [None, "", "   ", float("nan")])
def test_empty_values_are_unlabelled(value):
    assert normalize_label(value) is None


def test_values_that_are_not_integral_numbers_stay_as_written():
    assert normalize_label("01") == "01"  # a code, not a number
    assert normalize_label(1.5) == "1.5" and normalize_label("1.5") == "1.5"
    assert normalize_label(-0.0) == "0" and normalize_label("-0.0") == "0"
    assert normalize_label(False) == "false" and normalize_label("False") == "false"
    assert not math.isnan(float(normalize_label(2.0)))


def test_unicode_names_are_nfc_normalised_and_stripped():
    composed, decomposed = "n\u00e9gatif", "ne\u0301gatif"
    assert normalize_label(decomposed) == normalize_label(f" {composed} ") == composed
    assert normalize_label("正面") == "正面"
    assert normalize_label("正面".encode()) == "正面"


def test_label_index_matches_normalised_names_and_refuses_collisions():
    assert label_index(["0", "1"]) == {"0": 0, "1": 1}
    assert label_index(["False", "True"]) == {"false": 0, "true": 1}
    with pytest.raises(ConfigError, match="'1' and '1.0' both read as '1'"):
        label_index(["1", "1.0"])
    with pytest.raises(ConfigError, match="empty"):
        label_index(["a", " "])
