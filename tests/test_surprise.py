"""Known answers for the pure scorer (the docstring's worked example, exactly)."""
import doctest

import numpy as np
import pytest

from assistant import surprise
from assistant.surprise import classify, compare, score


def test_worked_example_exactly():
    s = score(s0=[8.0, 1.0, 6.0, 0.5], sY=[1.0, 0.5, 7.0, 0.25], copied=[False, False, False, True])
    assert (s.H_X, s.H_X_given_Y, s.I) == (15.5, 8.75, 6.75)
    assert s.i.tolist() == [7.0, 0.5, -1.0, 0.25]
    assert s.classes == ["surprise", "cliche", "noise", "cliche"]
    assert (s.I_uncopied, s.I_copied) == (6.5, 0.25)
    assert (s.I_per_token, s.I_uncopied_per_token) == (1.6875, 6.5 / 3)


def test_docstrings_run():
    assert doctest.testmod(surprise).failed == 0


def test_bits_from_natural_logprobs():
    assert surprise.bits_from_logprobs([-np.log(2.0)]).tolist() == pytest.approx([1.0])
    assert surprise.bits_from_logprobs([np.log(0.25)]).tolist() == pytest.approx([2.0])


@pytest.mark.parametrize("s0,sY,cls", [(8, 1, "surprise"), (6, 7, "noise"), (1, 0.5, "cliche"), (3, 3, "plain"),
                                       (4, 2, "surprise"), (4, 2.5, "plain"), (5, 5, "noise")])
def test_classes(s0, sY, cls):
    assert classify(s0, sY) == cls


def test_mutual_information_is_sum_of_pointwise_terms():
    rng = np.random.default_rng(0)
    s0, sY = rng.uniform(0, 12, 50), rng.uniform(0, 12, 50)
    s = score(s0, sY)
    assert s.I == pytest.approx(s.H_X - s.H_X_given_Y)
    assert s.I == pytest.approx(float((s0 - sY).sum()))
    assert s.n_copied == 0 and s.I_uncopied == pytest.approx(s.I)


def test_all_copied_has_zero_uncopied_mean():
    s = score([5.0, 6.0], [1.0, 1.0], [True, True])
    assert s.I_uncopied == 0.0 and s.I_uncopied_per_token == 0.0 and s.I_copied == 9.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="s0 has 2 tokens but sY has 1"):
        score([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        score([float("inf")], [1.0])
    with pytest.raises(ValueError, match="copied has 1 flags for 2 tokens"):
        score([1.0, 2.0], [1.0, 1.0], [True])


def test_compare_is_length_fair():
    long_low = score([3.0] * 100, [2.5] * 100)     # 0.5 bits/token, 50 bits
    short_high = score([6.0] * 10, [3.0] * 10)     # 3 bits/token, 30 bits
    c = compare(short_high, long_low)
    assert c["winner"] == "A" and c["delta_I_per_token"] == pytest.approx(2.5)
