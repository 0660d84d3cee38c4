"""Spans of a text copied from the brief (word n-gram overlap), mapped onto tokens.

Restating the brief earns I cheaply: the brief "explains" tokens that are rare on
their own (docs/design.md §5). We mark every word that sits inside an n-gram of
N_WORDS or more consecutive words that also occurs in the brief, and every token
that overlaps such a word. Single shared words (a character's name) are not copying.
N_WORDS is 2: measured against 3 on the pairs and the generation grid, 2-word spans
leave I_uncopied far less rewarded by restating the brief and keep the judge's signal
(README, "Copied spans: the decision"; eval/copyrule.py applies the rule).

Worked example (tests/test_copying.py asserts it)::

    >>> copied_words("The lamp was lit.", "the lamp room smelled")   # a shared word pair is copying
    [True, True, False, False]
    >>> copied_words("A lamp was lit.", "the lamp room smelled")     # a shared word alone is not
    [False, False, False, False]
    >>> copied_words("the lamp room smelled of paraffin", "the lamp room smelled")
    [True, True, True, True, False, False]

Brief overlap, the guard that does not come from I: the share of the text's word bigrams (lower-cased,
punctuation dropped) that occur in the brief::

    >>> brief_overlap("The lamp room, at last, smelled.", "The lamp room smelled of oil")   # 2 of 5 bigrams
    0.4
"""
from __future__ import annotations

import re

N_WORDS = 2  # shortest copied span, in words
_WORD = re.compile(r"[A-Za-z0-9\u00C0-\u024F']+")


def _words(text: str) -> list[tuple[str, int, int]]:
    """(normalised word, start char, end char) for each word."""
    return [(m.group(0).lower().strip("'"), m.start(), m.end()) for m in _WORD.finditer(text)]


def copied_words(text: str, brief: str, n: int = N_WORDS) -> list[bool]:
    """One flag per word of `text`: does it sit in an n-gram (n words or more) found in `brief`?

    Punctuation is ignored; case is folded, so "The lamp room" in the text matches
    "the lamp room" in the brief only when the words follow each other in both.
    """
    words = [w for w, _, _ in _words(text)]
    grams = {tuple(g) for g in _ngrams([w for w, _, _ in _words(brief)], n)}
    flags = [False] * len(words)
    for k in range(len(words) - n + 1):
        if tuple(words[k:k + n]) in grams:
            for j in range(k, k + n):
                flags[j] = True
    return flags


def copied_char_spans(text: str, brief: str, n: int = N_WORDS) -> list[tuple[int, int]]:
    """Character spans [start, end) of the words of `text` that are copied from `brief`."""
    spans = []
    for (_, start, end), flag in zip(_words(text), copied_words(text, brief, n)):
        if flag:
            spans.append((start, end))
    return spans


def copied_tokens(token_offsets: list[tuple[int, int]], text: str, brief: str,
                  n: int = N_WORDS) -> list[bool]:
    """Flag each token (given as char offsets into `text`) that overlaps a copied word."""
    spans = copied_char_spans(text, brief, n)
    out = []
    for start, end in token_offsets:
        out.append(any(s < end and start < e for s, e in spans))
    return out


def _ngrams(seq: list[str], n: int):
    return (seq[k:k + n] for k in range(len(seq) - n + 1))


def brief_overlap(text: str, brief: str) -> float | None:
    """Share of `text`'s word bigrams found among `brief`'s (None when the text has fewer than 2 words)."""
    tw = [w for w, _, _ in _words(text)]
    bw = [w for w, _, _ in _words(brief)]
    grams = list(zip(tw, tw[1:]))
    if not grams:
        return None
    known = set(zip(bw, bw[1:]))
    return sum(g in known for g in grams) / len(grams)


def n_words(text: str) -> int:
    return len(_words(text))
