import doctest

from assistant import copying
from assistant.copying import copied_tokens, copied_words


def test_docstring_examples():
    assert doctest.testmod(copying).failed == 0


def test_known_answer():
    assert copied_words("the lamp room smelled of paraffin", "the lamp room smelled") == [True] * 4 + [False] * 2
    assert copied_words("The lamp was lit.", "the lamp room smelled") == [True, True, False, False]
    assert copied_words("A lamp was lit.", "the lamp room smelled") == [False] * 4
    # The 3-word rule, still measured beside it by eval: a shared pair alone is not a span there.
    assert copied_words("The lamp was lit.", "the lamp room smelled", n=3) == [False] * 4


def test_case_and_punctuation_are_ignored():
    assert copied_words("Never, ever, Sorry!", "never ever sorry") == [True, True, True]


def test_names_alone_are_not_copying():
    assert not any(copied_words("Ilse climbed. Ilse slept.", "Ilse keeps the light"))


def test_tokens_overlapping_copied_words():
    text = "a lonely lighthouse keeper waved"
    offsets = [(0, 1), (1, 8), (8, 19), (19, 26), (26, 32)]  # "a", " lonely", " lighthouse", " keeper", " waved"
    assert copied_tokens(offsets, text, "the lonely lighthouse keeper") == [False, True, True, True, False]
    assert copied_tokens(offsets, text, "a lonely harbour") == [True, True, False, False, False]
