"""Known answers for eval/stats.py: the docstring's worked example, asserted exactly."""
import doctest
import math

import pytest

from eval import stats


def test_docstring_examples_hold():
    assert doctest.testmod(stats).failed == 0


def test_cohens_dz_worked_example():
    assert stats.cohens_dz([1.0, 2.0, 3.0]) == 2.0          # mean 2 / sd(ddof=1) 1
    assert stats.cohens_dz([2.0, -1.0]) == pytest.approx(0.5 / math.sqrt(4.5))
    assert stats.cohens_dz([1.0]) is None                    # one pair: no sd
    assert stats.cohens_dz([0.5, 0.5, 0.5]) is None          # sd 0: undefined


def test_wilcoxon_exact_by_hand():
    # ranks of |d| are 1..5; W+ = 14 when only the smallest is negative.
    # Of the 2^5 equally likely sign patterns, W+ >= 14 for {2,3,4,5} and {1,2,3,4,5}: p = 2/32.
    assert stats.wilcoxon_greater([-1.0, 2.0, 3.0, 4.0, 5.0]) == 0.0625
    assert stats.wilcoxon_greater([1.0, 2.0, 3.0, 4.0, 5.0]) == 1 / 32
    assert stats.wilcoxon_greater([-1.0, -2.0, -3.0, -4.0, -5.0]) == 1.0   # all below: nothing "greater"
    assert stats.wilcoxon_greater([0.0, 0.0, 0.0]) is None
    assert stats.wilcoxon_greater([1.0]) is None


def test_validation_rate_and_delta_delta():
    assert stats.validation_rate([0.5, -0.25, 1.0, 0.0]) == 0.5
    assert stats.validation_rate([]) is None
    dd = stats.delta_delta([1.5, 2.5, 3.5], [0.5, 0.5, 0.5])   # differences 1, 2, 3
    assert dd == {"n": 3, "mean": 2.0, "wilcoxon_p": 0.125, "cohens_d": 2.0}
    with pytest.raises(ValueError, match="differ in length"):
        stats.paired_differences([1.0], [1.0, 2.0])
