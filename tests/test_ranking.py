"""Best-of-N ranking: the docstring's worked example, and that restating the brief cannot win."""
import doctest

from assistant import ranking


def test_worked_example():
    assert doctest.testmod(ranking).failed == 0


def test_restatement_never_beats_a_clean_draft_and_budget_not_length_divides():
    clean = {"I_uncopied": 1.0, "brief_overlap": 0.10}
    parrot = {"I_uncopied": 99.0, "brief_overlap": 0.47}
    assert ranking.rank([parrot, clean], 160) == [1, 0]
    # the same bits over a shorter draft do not rank higher: the budget, not the length, divides
    assert ranking.rank_score({"I_uncopied": 20.0}, 160) == ranking.rank_score({"I_uncopied": 20.0, "n_tokens": 30}, 160)
    assert ranking.rank([None, {"I_uncopied": -5.0, "brief_overlap": None}], 100) == [1, 0]
