"""The generation grid on fake writers and readers: picks, pairing, Holm, the rule as code, resuming."""
import doctest

from assistant.sampler import Sampler
from eval import grid
from eval.cache import ScoreCache
from eval.pairs import BriefRecord
from eval.readers import ReaderSpec

BRIEFS = [BriefRecord(f"b{k}", "fable", {"task": f"Write {k}.", "intent": "the fox is kind", "audience": "a",
                                          "world": "a fox and a crow", "text_so_far": ""}) for k in range(8)]
WRITERS = [grid.GridWriter("base", None), grid.GridWriter("cqa-notes", "/a.gguf", "s" * 64, False)]
READERS = [ReaderSpec("r", "fake", "/f.gguf", "a" * 64, "chat")]


def own_score(seed: int, alpha: float) -> dict:
    """The writer's own score: under 3-word spans (the top-level I_uncopied, as cached before the switch) seed 0
    ranks first; under 2-word spans, the score's rule, seed 1 does."""
    i3, i2 = 10.0 - seed + 5 * alpha, 10.0 + seed + 5 * alpha
    return {"I_uncopied": i3, "brief_overlap": 0.6 if alpha > 0.9 else 0.0, "I_per_token": 1.0,
            "copy_rules": {"2": {"I_uncopied": i2, "I_uncopied_per_token": i2 / 12, "n_copied": 2},
                           "3": {"I_uncopied": i3, "I_uncopied_per_token": i3 / 12, "n_copied": 1}}}


class Writer:
    calls = 0
    batches = 0

    def __init__(self, w):
        self.w = w

    def draft(self, brief, sampler, alpha, notes, notes_tokens):
        Writer.calls += 1
        if alpha > 0.9:      # high guidance restates the brief
            text = f"{brief.world} {brief.world} {brief.intent}"
        else:
            text = f"{self.w.name} seed {sampler.seed} wrote a tale of a red kite over the moor at dusk"
        return {"text": text, "n_tokens": 12, "stop_reason": "eos", "notes": "", "seconds": 1.0,
                "own_score": own_score(sampler.seed, alpha)}

    def drafts(self, brief, sampler, alpha, notes, notes_tokens, n):
        """Best of n side by side: n drafts of seeds s..s+n-1 in one batch that costs 1.5 drafts' time."""
        Writer.batches += 1
        Writer.calls -= n
        out = [self.draft(brief, Sampler(seed=sampler.seed + k, max_tokens=sampler.max_tokens), alpha, notes,
                          notes_tokens) for k in range(n)]
        return {"drafts": [{**d, "seed": sampler.seed + k} for k, d in enumerate(out)], "seconds": 1.5}

    def close(self):
        """A fake holds nothing to free."""


class Reader:
    def score_texts(self, brief, context, texts):
        return [self.score(brief, t) for t in texts]

    def score(self, brief, text):
        gain = 0.5 if "cqa" in text else 0.0
        if "fox" in text:
            gain = 3.0   # restating the brief raises I under every reader
        seed = int(text.split("seed ")[1].split()[0]) if "seed " in text else 0
        k = int(brief.task.split()[1].rstrip("."))
        i = 0.2 + gain * (1 + 0.1 * k) + 0.005 * seed
        return {"n_tokens": 12, "I": 12 * i, "I_uncopied": 12 * i, "I_per_token": i, "I_uncopied_per_token": i}

    def close(self):
        """A fake holds nothing to free."""


class Readers:
    n_threads = 1

    def open(self, model, adapter, template):
        assert adapter is None       # the grid's readers wrote nothing: no adapter
        return Reader()


def _run(tmp_path):
    cache = ScoreCache(tmp_path / "cache.json")
    return grid.run(BRIEFS, WRITERS, (0.0, 0.5, 1.0), (1, 2), READERS, Sampler(max_tokens=12), cache, Writer, Readers(),
                    notes_tokens=0, progress=False)


def test_docstring_rule_example():
    assert doctest.testmod(grid).failed == 0


def test_grid_picks_reads_pairs_and_the_rule_refuses_restatement(tmp_path):
    Writer.calls = Writer.batches = 0
    res = _run(tmp_path)
    assert Writer.calls == 2 * 3 * 8            # writers x alphas x briefs: seed 0 alone, written once
    assert Writer.batches == 2 * 3 * 8          # ... and best of 2 side by side, once
    rows = res["rows"]
    assert len(rows) == 2 * 3 * 8 * 2            # x best-of values
    n1 = [r for r in rows if r["n"] == 1]
    assert all(r["seed"] == 0 for r in n1)
    n2 = [r for r in rows if r["n"] == 2 and r["alpha"] == 0.0]
    # own score under the score's 2-word rule: seed 1 higher (under the 3-word rule seed 0 would win)
    assert all(r["seed"] == 1 for r in n2) and all(r["seconds"] == 1.5 for r in n2)   # the batch's wall time
    s = grid.summarise(rows, ["r"], grid.settings(WRITERS, (0.0, 0.5, 1.0), (1, 2)))
    ref = s["base α=0 N=1"]
    assert "vs_reference" not in ref["readers"]["r"]
    cqa = s["cqa-notes α=0 N=1"]["readers"]["r"]["vs_reference"]
    assert cqa["n"] == 8 and abs(cqa["mean"] - 0.5 * 1.35) < 1e-9 and cqa["p_holm"] >= cqa["wilcoxon_p"]
    parrot = s["base α=1 N=1"]
    assert parrot["brief_overlap"] > 0.5 and parrot["readers"]["r"]["I_uncopied_per_token"] > 3
    c = grid.choose(s, "r")
    assert c["changed"] and c["setting"] == "cqa-notes α=0 N=1"     # cheaper than N=2, within the tie band
    assert "brief_overlap" in c["reasons"]["base α=1 N=1"]
    # resuming: a second run writes nothing new
    Writer.calls = Writer.batches = 0
    again = _run(tmp_path)
    assert Writer.calls == Writer.batches == 0 and [r["text"] for r in again["rows"]] == [r["text"] for r in rows]


def test_holm_adjusts_in_step_down_order():
    s = {k: {"readers": {"r": {"vs_reference": {"wilcoxon_p": p}}}} for k, p in (("a", 0.01), ("b", 0.04), ("c", 0.03))}
    grid.holm(s, "r")
    assert [s[k]["readers"]["r"]["vs_reference"]["p_holm"] for k in "acb"] == [0.03, 0.06, 0.06]


def test_the_committed_grid_report_renders_as_committed():
    """report.md and transcript.md are functions of report.json: the committed files come back byte for byte."""
    import json
    from pathlib import Path

    from eval import grid_report
    for name in ("generate-grid", "generate-grid-lockstep"):
        folder = Path(__file__).resolve().parents[1] / "eval" / "results" / name
        result = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        assert grid_report.markdown(result) == (folder / "report.md").read_text(encoding="utf-8")
        assert grid_report.transcript(result) == (folder / "transcript.md").read_text(encoding="utf-8")
