"""What else could have been written at one position, and what the score makes of each choice: pure maths on
the top-k rows a draft or a score pass already holds (`logits.TopK`; docs/design.md §11).

For token t of a scored text, row t of the top-k holds the K most probable next tokens under the brief
(the conditional reader) with their natural-log probabilities `lp`, and the log-probabilities `lp0` of the
same ids under the unconditional reader. Each alternative x gets, in bits:

    sY = -log2 p(x|Y)     s0 = -log2 p(x)     i = s0 - sY = log2 p(x|Y) - log2 p(x)

its class by `surprise.classify(s0, sY)` (calibrated surprise / noise / cliché / plain), and a copy flag:
would writing it copy the brief? The text before position t plus the alternative is checked with the
score's own rule (`copying.copied_tokens`, spans of 2 words or more found in the brief).

Worked example (tests/test_alternatives.py asserts it): the brief "the lamp room smelled", the text
before the position "She climbed to the", three alternatives

    >>> import numpy as np
    >>> top = Rows(ids=np.array([[7, 8, 9]]), lp=np.log([[0.5, 0.25, 1 / 32]]), lp0=np.log([[0.5, 1 / 16, 1 / 64]]))
    >>> rows = panel(top, 0, [" top", " lamp", " attic"], before="She climbed to the",
    ...              brief_text="the lamp room smelled", written=7)
    >>> [(r.text, r.p, r.i, r.cls, r.copies, r.written) for r in rows]   # doctest: +NORMALIZE_WHITESPACE
    [(' top', 0.5, 0.0, 'cliche', False, True),
     (' lamp', 0.25, 2.0, 'surprise', True, False),
     (' attic', 0.03125, 1.0, 'noise', False, False)]
    >>> [r.text for r in sort(rows, "i")]                 # by i, highest first
    [' lamp', ' attic', ' top']

" lamp" is four times likelier with the brief (i = 2 bits, s0 = 4: calibrated surprise) but it would write
"the lamp", a word pair of the brief: it is marked as a copy, which the score does not reward.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from . import copying, surprise
from .errors import BadInput

SORTS = ("p", "i")     # by probability under the brief, or by i (how much the brief explains the choice)
CLASS_WORDS = {"surprise": "calibrated surprise", "noise": "noise", "cliche": "cliché", "plain": "plain",
               "unknown": "unknown (no reader without the brief read this position)"}


@dataclass(frozen=True)
class Rows:
    """The top-k rows in the shape of `logits.TopK` (ids (n, K); natural logs lp, lp0 (n, K))."""
    ids: np.ndarray
    lp: np.ndarray
    lp0: np.ndarray


@dataclass(frozen=True)
class Alternative:
    token: int         # token id
    text: str          # its text (a piece; may start with a space)
    p: float           # p(x|Y): probability under the brief (raw distribution, before sampling)
    p0: float | None   # p(x): probability without the brief (None: unknown)
    sY: float          # bits, -log2 p(x|Y)
    s0: float | None   # bits, -log2 p(x)
    i: float | None    # bits, s0 - sY: how much the brief explains this choice
    cls: str           # surprise.classify(s0, sY): surprise / noise / cliche / plain ("unknown" without p(x))
    copies: bool       # writing it would copy a span of the brief (the copy rule)
    written: bool      # the token the text holds at this position

    @property
    def words(self) -> str:
        """The class in words."""
        return CLASS_WORDS[self.cls]

    def to_json(self) -> dict:
        return {**asdict(self), "class": self.cls, "class_words": self.words}


def check_position(position, n_tokens: int) -> int:
    """A token position from a user: a whole number inside the text, else one clear message."""
    if isinstance(position, float) and position.is_integer():
        position = int(position)
    if isinstance(position, bool) or not isinstance(position, int):
        raise BadInput(f"position {position!r} must be a whole number (a token index from 0)")
    if not 0 <= position < n_tokens:
        raise BadInput(f"position {position} is outside the text: it has {n_tokens} tokens (positions 0 to "
                       f"{n_tokens - 1})")
    return position


def panel(top, t: int, texts: list[str], before: str, brief_text: str, written: int,
          written_row: tuple[str, float, float] | None = None) -> list[Alternative]:
    """Row t of `top` as alternatives, most probable under the brief first. `texts`: the text of each id in
    the row. `written`: the id the text holds at t; when it is not among the top k, `written_row` (its text
    and its conditional and unconditional natural-log probabilities, from the score) adds it as a last row."""
    ids, lp, lp0 = (np.asarray(a)[t] for a in (top.ids, top.lp, top.lp0))
    rows = [_row(int(x), s, float(a), float(b), before, brief_text, int(x) == written)
            for x, s, a, b in zip(ids, texts, lp, lp0)]
    if written_row is not None and written not in {r.token for r in rows}:
        rows.append(_row(written, *written_row, before, brief_text, True))
    return rows


def sort(rows: list[Alternative], by: str = "p") -> list[Alternative]:
    """Rows by probability under the brief ("p") or by i ("i"), highest first; ties keep their order."""
    if by not in SORTS:
        raise BadInput(f"sort {by!r}: use 'p' (probability under the brief) or 'i' (bits the brief explains)")
    return sorted(rows, key=(lambda r: -r.p) if by == "p" else (lambda r: -r.i if r.i is not None else math.inf))


def _row(token: int, text: str, lp: float, lp0: float, before: str, brief_text: str, written: bool) -> Alternative:
    sY = _clean(-lp / surprise.LN2)
    joined = before + text
    copies = bool(text.strip()) and copying.copied_tokens([(len(before), len(joined))], joined, brief_text)[0]
    if not math.isfinite(lp0):   # no unconditional reader read this position: p(x) and i are unknown
        return Alternative(token, text, _clean(math.exp(lp)), None, sY, None, None, "unknown", bool(copies), written)
    s0 = _clean(-lp0 / surprise.LN2)
    return Alternative(token, text, _clean(math.exp(lp)), _clean(math.exp(lp0)), sY, s0, _clean(s0 - sY),
                       surprise.classify(s0, sY), bool(copies), written)


def _clean(bits: float) -> float:
    """Round away float noise (1.0000000000000002 bits is 1.0): 12 significant digits are far below any
    difference a reader can tell."""
    return float(f"{bits:.12g}") + 0.0
