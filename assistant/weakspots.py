"""Weak spots: the sentences of a text that the score flags, which kind of weakness, and why in words. Pure
maths on a scored text's tokens (docs/design.md §11).

Per sentence, over its tokens not copied from the brief (copied spans earn nothing, §5), the means in
bits/token of s0 (surprise without the brief), sY (with it) and i = s0 - sY. A sentence is judged when it
has at least MIN_TOKENS such tokens. It is **weak** when its I per token is below the whole text's and it
is among the lowest third of the judged sentences (ceil(n/3), at most MAX_FLAGS). Its shortfall against the
text splits exactly in two, because i = s0 - sY:

    I_text - I_sentence = (s0_text - s0_sentence) + (sY_sentence - sY_text)
                          less surprising on its own   more surprising given the brief

and the kind names the part that weighs more, unless the brief explains nothing at all:

- `unexplained`: I per token <= 0: the brief makes these words no likelier (they ignore or go against it);
- `cliche`: the first part weighs more: predictable with or without the brief, nothing for it to explain;
- `noise`: the second part weighs more: still surprising to a reader who knows the brief.

Worked example (tests/test_weakspots.py asserts it): four sentences of three tokens each

    >>> import re
    >>> text = "Aa bb cc. Dd ee ff. Gg hh ii. Jj kk ll."
    >>> offsets = [m.span() for m in re.finditer(r"\\S+", text)]
    >>> s0 = [6] * 3 + [1] * 3 + [6] * 3 + [3] * 3
    >>> sY = [2] * 3 + [0.5] * 3 + [5.75] * 3 + [4] * 3
    >>> out = find(text, offsets, s0, sY)
    >>> [(s.text, s.I_per_token, s.kind, s.weak) for s in out]   # the text: 0.9375 bits/token
    [('Aa bb cc.', 4.0, '', False), ('Dd ee ff.', 0.5, 'cliche', False), ('Gg hh ii.', 0.25, 'noise', True), ('Jj kk ll.', -1.0, 'unexplained', True)]

The text's means are s0 = 4, sY = 3.0625; "Dd ee ff." falls short mostly by being predictable (s0 1 against
4), "Gg hh ii." by staying surprising given the brief (sY 5.75 against 3.06). Two of four sentences are
flagged (ceil(4/3)), the lowest by I: "Dd ee ff." is below the text's mean but third lowest.
Sentences end at . ! ? … (with closing quotes or brackets) before a space, and at line breaks; an
abbreviation such as "Mr." also ends one, which only makes a sentence shorter.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np

from . import surprise

MIN_TOKENS = 3       # uncopied tokens a sentence needs to be judged: one or two tokens say little
MAX_FLAGS = 5        # weak sentences shown at most, lowest I first
KINDS = {"unexplained": "unexplained by the brief", "cliche": "cliché", "noise": "noise"}
_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s|$)|\n+")


@dataclass(frozen=True)
class Sentence:
    index: int           # order in the text, from 0
    start: int           # characters [start, end) of the text
    end: int
    text: str
    first_token: int     # tokens [first_token, last_token) overlap it
    last_token: int
    n_tokens: int        # uncopied tokens judged
    I_per_token: float   # bits/token over uncopied tokens (nan when none)
    s0: float            # bits/token, surprise without the brief
    sY: float            # bits/token, surprise given the brief
    n_cliche: int
    n_noise: int
    kind: str            # "" (not below the text), "unexplained", "cliche" or "noise"
    weak: bool           # flagged: among the lowest third and below the text
    reason: str          # the kind in words, with the numbers

    def to_json(self) -> dict:
        d = asdict(self)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences, surrounding spaces left out.

    >>> t = 'She ran. "Why?" he asked.\\nNo.'
    >>> [t[a:b] for a, b in sentence_spans(t)]
    ['She ran.', '"Why?"', 'he asked.', 'No.']
    """
    spans, start = [], 0
    for m in _END.finditer(text):
        end = m.start() if m.group().startswith("\n") else m.end()
        _add(spans, text, start, end)
        start = m.end()
    _add(spans, text, start, len(text))
    return spans


def _add(spans: list, text: str, a: int, b: int) -> None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    if b > a:
        spans.append((a, b))


def find(text: str, offsets, s0, sY, copied=None) -> list[Sentence]:
    """Every sentence of `text` with its numbers, kind and whether it is weak. `offsets`: each token's
    characters; s0, sY: bits per token; copied: the score's copy flags (None: nothing copied)."""
    s0, sY = np.asarray(s0, dtype=np.float64), np.asarray(sY, dtype=np.float64)
    keep = ~np.asarray(copied, dtype=bool) if copied is not None else np.ones(s0.size, dtype=bool)
    spans = sentence_spans(text)
    owner = _owners(text, offsets, spans)
    base_s0, base_sY = _mean(s0[keep]), _mean(sY[keep])
    base_i = base_s0 - base_sY
    stats = []
    for k, (a, b) in enumerate(spans):
        toks = np.flatnonzero(owner == k)
        judged = toks[keep[toks]] if toks.size else toks
        m0, mY = _mean(s0[judged]), _mean(sY[judged])
        classes = [surprise.classify(x, y) for x, y in zip(s0[judged], sY[judged])]
        first, last = (int(toks[0]), int(toks[-1]) + 1) if toks.size else (0, 0)
        stats.append(dict(index=k, start=a, end=b, text=text[a:b], first_token=first, last_token=last,
                          n_tokens=int(judged.size), I_per_token=m0 - mY, s0=m0, sY=mY,
                          n_cliche=classes.count("cliche"), n_noise=classes.count("noise")))
    judged = [s for s in stats if s["n_tokens"] >= MIN_TOKENS]
    below = [s for s in judged if s["I_per_token"] < base_i]
    below_ids = {s["index"] for s in below}
    flagged = {s["index"] for s in sorted(below, key=lambda s: s["I_per_token"])[:min(MAX_FLAGS, math.ceil(len(judged) / 3))]}
    out = []
    for s in stats:
        kind = _kind(s, base_s0, base_sY) if s["index"] in below_ids else ""
        out.append(Sentence(**s, kind=kind, weak=s["index"] in flagged,
                            reason=_reason(kind, s, base_s0, base_sY, base_i)))
    return out


def from_scored(result) -> list[Sentence]:
    """find() on a ScoredText (assistant/scoring.py)."""
    s = result.score
    return find(result.text, result.offsets, s.s0, s.sY, s.copied)


def weak(sentences: list[Sentence]) -> list[Sentence]:
    """The flagged sentences, lowest I per token first."""
    return sorted((s for s in sentences if s.weak), key=lambda s: s.I_per_token)


def _owners(text: str, offsets, spans) -> np.ndarray:
    """For each token, the sentence holding its first non-space character (-1: none, e.g. a space)."""
    starts = [a for a, _ in spans]
    owner = np.full(len(offsets), -1)
    for t, (a, b) in enumerate(offsets):
        c = a
        while c < b and text[c].isspace():
            c += 1
        if c >= b:
            continue
        k = int(np.searchsorted(starts, c, side="right")) - 1
        if k >= 0:   # inside sentence k, or stray punctuation after its end: it belongs there
            owner[t] = k
    return owner


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else math.nan


def _kind(s: dict, base_s0: float, base_sY: float) -> str:
    if s["I_per_token"] <= 0:
        return "unexplained"
    flat, lost = base_s0 - s["s0"], s["sY"] - base_sY
    return "cliche" if flat >= lost else "noise"


def _reason(kind: str, s: dict, base_s0: float, base_sY: float, base_i: float) -> str:
    n, i = s["n_tokens"], s["I_per_token"]
    if kind == "unexplained":
        how = "less" if i < 0 else "no more"
        return (f"Unexplained by the brief: its words are {how} likely with the brief than without "
                f"({i:+.2f} bits/token; the whole text {base_i:+.2f}). Does it serve the task, intent or audience?")
    if kind == "cliche":
        return (f"Cliché: predictable with or without the brief ({s['s0']:.1f} bits/token on its own, the text "
                f"{base_s0:.1f}; {s['n_cliche']} of {n} tokens are clichés), so the brief has little to explain "
                f"({i:+.2f} bits/token against {base_i:+.2f}).")
    if kind == "noise":
        return (f"Noise: surprising even to a reader who knows the brief ({s['sY']:.1f} bits/token, the text "
                f"{base_sY:.1f}; {s['n_noise']} of {n} tokens are noise): the brief does not account for these "
                f"words ({i:+.2f} bits/token against {base_i:+.2f}).")
    return ""
