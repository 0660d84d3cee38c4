"""Log-prob passes: a text read after a prompt, in batches, every position's log-prob and top-k alternatives.

    >>> [[cond, uncond]] = run(engine, [prompts.conditional, prompts.unconditional], [ids])   # doctest: +SKIP
    >>> cond.logprobs, cond.top_ids, uncond.top_lp        # uncond's top-k log-probs are read at cond's top ids

Each prompt is decoded once, into sequence 0; each text is read in sequence 1, which shares the prompt's
cells (llama.cpp's seq_cp: no compute, no cells), so one prompt serves many texts (versions of a passage,
drafts of one brief, pair texts). Logits are asked for only where they predict a text token and reduced at
once: memory grows with n_batch x vocabulary, never n_ctx x vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import BadText, EngineFailure
from .llama import Context, LlamaError
from .logits import TOP_K, logprobs_at, logprobs_of, top_of

EngineError = EngineFailure


@dataclass(frozen=True)
class TokenLogprobs:
    """Log-probs (natural log) of each text token given the prompt and the tokens before it."""
    ids: list[int]
    pieces: list[str]                 # each token's text (UTF-8 fragments decoded leniently)
    offsets: list[tuple[int, int]]    # [start, end) char offsets of each token in `text`
    logprobs: np.ndarray              # float64, one per token
    text: str                         # the decoded text, exactly what offsets index
    top_ids: np.ndarray | None = None  # (n, K) int32: the K likeliest tokens at each position (logits.TopK)
    top_lp: np.ndarray | None = None   # (n, K) float64: their log-probs under this pass's prompt



def run(engine, prompts: list, texts: list[list[int]], top: bool = True) -> list[list[TokenLogprobs]]:
    """Per text, one pass per prompt, one after the other in the same context. (Two sequences in one batched
    decode were measured slower on CPU: with the cells shared, each token attends over both sequences'
    cells.) Each prompt is decoded once, into sequence 0, and shared with sequence 1 for each text.
    `top` False: no top-k alternatives (top_ids/top_lp None), for readers that need only the log-probs."""
    if not texts or any(not ids for ids in texts):
        raise BadText("the text to score is empty")
    planned = []
    for prompt in prompts:
        p = engine.tokenize_prompt(prompt)
        if not p:
            raise EngineError("the prompt is empty: every scored token needs something to follow")
        total = len(p) + max(map(len, texts))
        if total > engine.n_ctx:
            raise EngineError(f"prompt ({len(p)} tokens) + text ({max(map(len, texts))} tokens) = {total} tokens, "
                              f"more than the context window of {engine.n_ctx}: shorten the text or the brief, or "
                              "load the model with a larger n_ctx")
        planned.append(p)
    out = [[None] * len(prompts) for _ in texts]
    top_ids = [None] * len(texts)
    with engine.hold() as ctx:
        for k, p in enumerate(planned):
            ctx.clear()
            try:
                (last,) = [rows[-1].copy() for _, rows in ctx.decode([(t, i, 0, i == len(p) - 1)
                                                                      for i, t in enumerate(p)])]
                for j, ids in enumerate(texts):
                    ctx.remove(1)
                    ctx.copy_sequence(0, 1)
                    out[j][k] = _read_text(ctx, last, len(p), ids, top_ids[j], top)
                    if k == 0:
                        top_ids[j] = out[j][k][1]
            except LlamaError as e:
                raise EngineError(str(e)) from e
    result = []
    for j, ids in enumerate(texts):
        pieces, offsets, text = engine.pieces(ids)
        result.append([TokenLogprobs(ids, pieces, offsets, lp, text, tids, tlp) for lp, tids, tlp in out[j]])
    return result


def _read_text(ctx: Context, first_row: np.ndarray, start: int, ids: list[int], top_ids, top: bool = True):
    """Decode `ids` into sequence 1 after a prompt of `start` tokens whose last row is `first_row`:
    (log-probs, top-k ids, their log-probs); the top-k ids are found here, or given (read at `top_ids`);
    with `top` False only the log-probs (None, None)."""
    lps = np.empty(len(ids))
    find = top_ids is None
    tids = (np.empty((len(ids), TOP_K), dtype=np.int32) if find else top_ids) if top else None
    tlp = np.empty((len(ids), TOP_K)) if top else None

    def read(rows, at):      # rows predicting ids[at: at + len(rows)]
        lps[at: at + len(rows)] = logprobs_at(rows, np.asarray(ids[at: at + len(rows)]))
        for r, row in (enumerate(rows) if top else ()):
            if find:
                tids[at + r], tlp[at + r] = top_of(row)
            else:
                tlp[at + r] = logprobs_of(row, tids[at + r])
    read(first_row[None, :], 0)
    entries = [(t, start + i, 1, i < len(ids) - 1) for i, t in enumerate(ids)]
    k = 1
    for idx, rows in ctx.decode(entries):
        read(rows, k)
        k += len(idx)
    return lps, tids, tlp
