"""Writers: the engines that write drafts for `eval generate` and `eval grid`, every passage cut to one budget.

    python -m eval generate --n 2 --adapter cqa=models/cqa/adapter.gguf --out eval/out/generate

Both write as the app writes (assistant.writer.complete). A CQA-tuned model reasons first ("Notes:" ...
"Passage:"): it gets extra tokens for its notes, and only the passage, cut to the same token budget as every
other variant's (`cut_to_budget`), is read and counted. The draft records they return are what the score
cache holds, so their fields do not change.
"""
from __future__ import annotations

import dataclasses
import time

NOTES_TOKENS = 864   # a CQA-tuned model's notes before its passage: ~525 tokens on the corpus, up to ~650


def cut_to_budget(engine, text: str, budget: int, ids: list[int] | None = None) -> tuple[str, list[int], bool]:
    """(text, its token ids, whether it was cut): `text` cut to its first `budget` tokens (ids: its tokens when
    already known, e.g. as generated). The same passage budget for every variant, notes or not."""
    if ids is None:
        ids = engine.tokenize_text(text) if text else []
    if len(ids) <= budget:
        return text, ids, False
    return engine.pieces(ids[:budget])[2], ids[:budget], True


class EngineWriter:
    """`eval generate`'s writer: the app's default way of writing (no guidance), notes first for a CQA model."""

    def __init__(self, engine, template: str):
        self.engine, self.template = engine, template

    def draft(self, brief, sampler, notes_tokens: int = 0) -> dict:
        """{"text", "n_tokens", "stop_reason", "notes", "notes_tokens", "passage_header_added"} for one draft:
        `text` is the passage (a tuned model's notes apart), at most sampler.max_tokens tokens; the notes may
        use notes_tokens more."""
        from assistant.writer import HEADER_ADDED, complete

        eng, budget = self.engine, sampler.max_tokens
        # as the app writes it: "Passage:" is added when the model ends its turn after its notes
        u = complete(eng, brief, dataclasses.replace(sampler, max_tokens=budget + notes_tokens), self.template)
        notes, added = u.notes, HEADER_ADDED in u.notice
        known = None if notes or not u.ids else list(u.ids)     # without notes the generated ids are the passage's
        passage, ids, cut = cut_to_budget(eng, u.text, budget, known)
        return {"text": passage, "n_tokens": len(ids), "stop_reason": "length" if cut else u.stop_reason,
                "notes": notes, "notes_tokens": len(eng.tokenize_text(notes)) if notes else 0,
                "passage_header_added": added}

    def close(self) -> None:
        self.engine.close()


class EngineGridWriter:
    """`eval grid`'s writer: the app's own writer (twin stream, guidance, notes or not), the passage cut to the
    budget, its own live score kept for best-of-N."""

    def __init__(self, engine, template: str):
        self.engine, self.template = engine, template

    def draft(self, brief, sampler, alpha: float, notes: bool, notes_tokens: int) -> dict:
        from assistant import writer

        budget = sampler.max_tokens
        t0 = time.perf_counter()
        u = writer.complete(self.engine, brief, dataclasses.replace(sampler, max_tokens=budget + notes_tokens),
                            self.template, guidance=alpha, notes=notes)
        seconds = time.perf_counter() - t0
        passage = u.text if (u.result is not None or not u.text.lstrip().startswith("Notes:")) else ""
        passage, ids, _ = cut_to_budget(self.engine, passage, budget)
        return {"text": passage, "n_tokens": len(ids), "stop_reason": u.stop_reason, "notes": u.notes,
                "seconds": seconds, "own_score": own_summary(u.result) if u.result else None}

    def drafts(self, brief, sampler, alpha: float, notes: bool, notes_tokens: int, n: int) -> dict:
        """Best of n as the app writes it: n drafts side by side (seeds s..s+n-1, writer.best_of), each passage
        cut to the budget with its own live score; "seconds": the whole batch's wall time."""
        from assistant import writer

        budget = sampler.max_tokens
        t0 = time.perf_counter()
        *_, last = writer.best_of(self.engine, brief, dataclasses.replace(sampler, max_tokens=budget + notes_tokens),
                                  n, self.template, guidance=alpha, notes=notes)
        seconds = time.perf_counter() - t0
        out = []
        for u in sorted(last.ranked, key=lambda u: u.seed):
            passage = u.text if (u.result is not None or not u.text.lstrip().startswith("Notes:")) else ""
            passage, ids, _ = cut_to_budget(self.engine, passage, budget)
            out.append({"seed": u.seed, "text": passage, "n_tokens": len(ids), "stop_reason": u.stop_reason,
                        "notes": u.notes, "own_score": own_summary(u.result) if u.result else None})
        return {"drafts": out, "seconds": seconds}

    def own_score(self, brief, text: str) -> dict:
        """The writer's score of a passage it wrote, scored afresh: the brief alone, both passes."""
        from assistant.scoring import score_text

        return own_summary(score_text(self.engine, brief, text, template=self.template))

    def close(self) -> None:
        self.engine.close()


def own_summary(result) -> dict:
    """What best-of-N ranks by, from a ScoredText: I_uncopied (both copy rules kept), brief overlap, I per token."""
    own = result.to_json()
    return {**{k: own[k] for k in ("I_uncopied", "brief_overlap", "I_per_token")}, "copy_rules": result.copy_rules()}
