"""generate on fake writers/readers (summary, pairing, cache, markdown), text statistics, crosscheck math."""
import doctest

import pytest

from assistant.sampler import Sampler
from eval import crosscheck, textstats
from eval.cache import ScoreCache
from eval.generate import generate, summarise
from eval.pairs import BriefRecord
from eval.readers import ReaderSpec
from eval.transcript import markdown_summary, markdown_transcript
from eval.variants import Variant


def test_textstats_worked_example():
    assert doctest.testmod(textstats).failed == 0
    w = textstats.words("The cat sat. The cat sat. The end")
    assert textstats.distinct_n([w], 2) == 4 / 7
    assert textstats.repetition_rate(w, 3) == 1 - 4 / 6
    assert textstats.distinct_n([["a"]], 2) is None and textstats.repetition_rate(["a"], 4) is None


def test_crosscheck_agreement_example():
    assert doctest.testmod(crosscheck).failed == 0


BRIEFS = [BriefRecord("b1", "mystery", {"task": "Write.", "intent": "i", "audience": "a", "world": "w",
                                        "text_so_far": ""}),
          BriefRecord("b2", "fable", {"task": "Write more.", "intent": "i", "audience": "a", "world": "w",
                                      "text_so_far": ""})]
VARIANTS = [Variant("base", "fake", "/f.gguf", "a" * 64),
            Variant("e5", "fake", "/f.gguf", "a" * 64, "/e5.gguf", "b" * 64)]
READERS = [ReaderSpec("r1", "fake", "/f.gguf", "a" * 64, "chat"),
           ReaderSpec("r2", "fake2", "/g.gguf", "c" * 64, "plain")]


class Writer:
    opened = 0

    def __init__(self, v):
        self.v = v
        Writer.opened += 1

    budgets = []

    def draft(self, brief, sampler, notes_tokens=0):
        tag = "tuned" if self.v.adapter_path else "base"
        Writer.budgets.append((tag, sampler.max_tokens, notes_tokens))
        text = "" if (brief.task == "Write more." and sampler.seed == 1 and tag == "base") else \
            f"{tag} draft {sampler.seed} for {brief.task} {tag} {tag}"
        notes = "Notes:\n- [craft/lexis] a over b: why" if tag == "tuned" else ""
        return {"text": text, "n_tokens": len(text.split()), "stop_reason": "eos", "notes": notes,
                "notes_tokens": 12 if notes else 0}

    def close(self):
        """A fake holds nothing to free."""


class Reader:
    def __init__(self, model):
        self.model = model

    def score_texts(self, brief, context, texts):
        assert context is None and len(texts) == 1      # a draft is read under its brief alone
        return [self.score(brief, t) for t in texts]

    def score(self, brief, text):
        I = 1.0 + text.count("tuned") * (1.0 if brief.task == "Write." else 0.5)  # base drafts: 1.0
        return {"n_tokens": 4, "n_copied": 0, "I_per_token": I, "I_uncopied_per_token": I, "H_X_per_token": 5.0,
                "H_X_given_Y_per_token": 5.0 - I, "classes": {}}

    def close(self):
        """A fake holds nothing to free."""


class Readers:
    """Where fake readers of class `reader` run; `opened`: the (model, adapter, template) of each one opened."""
    n_threads = 1

    def __init__(self, reader=Reader):
        self.reader, self.opened = reader, []

    def open(self, model, adapter, template):
        self.opened.append((model, adapter, template))
        return self.reader(model)


class Refuse(Readers):
    def open(self, model, adapter, template):
        pytest.fail("reader opened")


def test_generate_summary_pairing_and_cache(tmp_path):
    cache = ScoreCache(tmp_path / "c.jsonl")
    readers = Readers()
    res = generate(BRIEFS, VARIANTS, READERS, 2, Sampler(max_tokens=20), "chat", cache, Writer, readers,
                   progress=False, notes_tokens=100)
    drafts = res["drafts"]
    # the same passage budget for all; only the adapter gets tokens for notes before its passage
    assert set(Writer.budgets) == {("base", 20, 0), ("tuned", 20, 100)}
    assert len(drafts) == 2 * 2 * 2 and {d["seed"] for d in drafts} == {0, 1}
    empty = [d for d in drafts if not d["text"]]
    assert len(empty) == 1 and empty[0]["scores"] == {"r1": None, "r2": None}
    assert readers.opened == [("fake", None, "chat"), ("fake2", None, "plain")]   # each reader once, no adapter
    s = summarise(drafts, ["base", "e5"], ["r1", "r2"])
    assert s["summary"]["base"]["readers"]["r1"] == {"n_scored": 3, "I_per_token": 1.0, "I_uncopied_per_token": 1.0,
                                                     "H_X_per_token": 5.0, "H_X_given_Y_per_token": 4.0}
    assert s["summary"]["e5"]["readers"]["r1"]["I_per_token"] == pytest.approx((4 + 4 + 2.5 + 2.5) / 4)
    vs = s["vs_base"]["e5"]["r1"]       # per brief, seeds averaged: b1 +3.0, b2 +1.5
    assert vs["n_briefs"] == 2 and vs["mean_I_difference"] == pytest.approx(2.25)
    assert vs["wilcoxon_p"] == pytest.approx(0.25)   # 2 positive differences: 1/4
    assert s["summary"]["base"]["stopped_at_eos"] == 1.0 and s["summary"]["e5"]["repetition_rate"] is not None
    assert s["summary"]["e5"]["with_notes"] == 1.0 and s["summary"]["e5"]["notes_tokens"] == 12
    assert s["summary"]["base"]["with_notes"] == 0.0 and s["summary"]["base"]["notes_tokens"] is None
    assert s["summary"]["base"]["with_passage"] == 0.75 and s["summary"]["e5"]["with_passage"] == 1.0
    # Same seeds, same settings: a re-run takes drafts and scores from the cache, opening nothing.
    Writer.opened = 0
    again = generate(BRIEFS, VARIANTS, READERS, 2, Sampler(max_tokens=20), "chat", ScoreCache(tmp_path / "c.jsonl"),
                     Writer, Refuse(), progress=False, notes_tokens=100)
    assert Writer.opened == 0 and again["drafts"] == drafts
    result = {"variants": ["base", "e5"], "readers": [r.__dict__ for r in READERS], "notes": [], "template": "chat",
              "sampler": Sampler(max_tokens=20).to_dict(), "n_per_brief": 2, "n_briefs": 2,
              "model": {"name": "fake", "sha256": "a" * 64}, "adapters": [{"name": "e5", "path": "/e5.gguf",
                                                                             "sha256": "b" * 64}],
              **s, "drafts": drafts, "timing": {"total": 1.0}}
    md = markdown_summary(result)
    assert "| e5 | 4 | 100% | 12 | 0% | 100% |" in md and "| base | 4 | 0% | – | 0% | 75% |" in md
    assert "## Scored by r2" in md and "e5 vs base, paired by brief" in md
    tr = markdown_transcript(result, BRIEFS)
    assert "## b1 (mystery)" in tr and "| seed | base | e5 |" in tr and "*(empty)*" in tr


class RuleReader(Reader):
    """A reader whose scores carry both copy rules: 2-word spans leave less I uncopied than 3-word ones."""
    opened = 0

    def __init__(self, model):
        super().__init__(model)
        RuleReader.opened += 1

    def score(self, brief, text):
        s = super().score(brief, text)
        return {**s, "copy_rules": {"2": {"I_uncopied": 1.0, "I_uncopied_per_token": 0.25, "n_copied": 2},
                                    "3": {"I_uncopied": 2.0, "I_uncopied_per_token": 0.5, "n_copied": 1}}}


def test_reads_follow_the_scores_copy_rule_and_old_reads_are_read_again(tmp_path):
    import json
    path = tmp_path / "c.jsonl"
    run = lambda: generate(BRIEFS, VARIANTS[:1], READERS[:1], 1, Sampler(max_tokens=20), "chat",  # noqa: E731
                           ScoreCache(path), Writer, Readers(RuleReader), progress=False)
    first = run()["drafts"]
    assert [d["scores"]["r1"]["I_uncopied_per_token"] for d in first] == [0.25, 0.25]   # 2-word spans, the score's
    assert RuleReader.opened == 1
    # A read cached before reads kept both rules (no "copy_rules"): read again, not taken as it is.
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    for x in lines:
        x["value"].pop("copy_rules", None)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    RuleReader.opened = 0
    assert run()["drafts"] == first and RuleReader.opened == 1


class WordEngine:
    """Tokens are words: enough of an engine for the budget cut."""

    def tokenize_text(self, text):
        return text.split()

    def pieces(self, ids):
        return ids, [], " ".join(ids)


def test_cut_to_budget_known_answer():
    from eval.writers import cut_to_budget

    eng = WordEngine()
    assert cut_to_budget(eng, "the clocks had stopped at nine", 4) == ("the clocks had stopped",
                                                                      ["the", "clocks", "had", "stopped"], True)
    assert cut_to_budget(eng, "at nine", 4) == ("at nine", ["at", "nine"], False)
    assert cut_to_budget(eng, "", 4) == ("", [], False)
    # ids already known (as generated) are cut, not the text tokenized again
    assert cut_to_budget(eng, "ignored", 1, ids=["a", "b"]) == ("a", ["a"], True)
