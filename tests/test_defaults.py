"""The app's defaults follow from the committed generation grid by README's rule, applied as code."""
import doctest
import json
from pathlib import Path

from assistant import defaults
from eval import grid

# the grid as the engine writes today (best of N side by side, the served weights); eval/results/generate-grid/ is
# the first run (one draft at a time, the shipped file), kept for the README's comparison: its rule chose the same
REPORT = Path(__file__).resolve().parent.parent / "eval" / "results" / "generate-grid-lockstep" / "report.json"
FIRST = REPORT.parents[1] / "generate-grid" / "report.json"
# the same grid with issue 21's preference-tuned writers (DPO, RFT) added: same briefs, seeds, readers, guards, rule
PREFER = REPORT.parents[1] / "generate-grid-prefer" / "report.json"


def test_docstring_examples():
    assert doctest.testmod(defaults).failed == 0


def test_the_rule_applied_to_the_committed_grid_gives_the_app_defaults():
    for path in (REPORT, FIRST, PREFER):
        report = json.loads(path.read_text(encoding="utf-8"))
        again = grid.choose(report["summary"], report["choice_reader"])    # the rule, re-applied to the numbers
        assert again == report["choice"]
        assert defaults.CURRENT == defaults.from_choice(again), path


def test_the_page_and_the_api_start_from_the_defaults():
    import inspect

    from assistant.pool import BASE_LABEL, CQA_LABEL, PASSAGE_LABEL
    from page import api, write
    sig = inspect.signature(api.Api.draft).parameters
    assert sig["guidance"].default == defaults.CURRENT.guidance
    assert sig["n"].default == defaults.CURRENT.drafts and sig["notes"].default == defaults.CURRENT.reason_first
    assert write.DEFAULT_VARIANT == {"base": BASE_LABEL, "cqa": CQA_LABEL,
                                     "cqa-passage": PASSAGE_LABEL}[defaults.CURRENT.model]


def test_every_grid_writer_is_a_way_of_writing_the_app_offers():
    """A grid choice of any writer maps to a model the app has and the `notes` flag the grid wrote with."""
    from assistant.pool import BASE_LABEL, CQA_LABEL, PASSAGE_LABEL, writes_notes
    label = {"base": BASE_LABEL, "cqa": CQA_LABEL, "cqa-passage": PASSAGE_LABEL}
    grid_notes = {"base": True, "cqa+notes": True, "cqa-notes": False, "passage": False}   # eval/grid_report.py
    for writer, notes in grid_notes.items():
        d = defaults.from_choice({"changed": True, "writer": writer, "alpha": 0.5, "n": 4})
        assert writes_notes(label[d.model], d.reason_first) == notes, writer


def test_the_served_weights_follow_from_the_fidelity_gate_and_the_speed_rule():
    """The copy the app serves: one that passes the gate (re-applied to the committed fidelity report), chosen by
    the speed rule (re-applied to the committed bench timings), on a CPU with the features it was measured on."""
    import sys

    from eval import fidelity
    root = REPORT.parents[3]
    sys.path.insert(0, str(root))
    from bench import engine as bench_engine
    gate = json.loads((root / "eval" / "results" / "fidelity" / "report.json").read_text(encoding="utf-8"))
    assert gate["passing"] == [c for c in gate["agreement"]["base"]["pairs"] if c != "shipped" and fidelity.passes(gate, c)]
    serve = json.loads((root / "bench" / "results" / "serve.json").read_text(encoding="utf-8"))
    assert serve["passing"] == gate["passing"]
    assert bench_engine.choose(serve) == serve["served"] == defaults.WEIGHTS
    assert all(f"{f} = 1" in serve["system_info"] for f in defaults.WEIGHTS_NEED)
    assert defaults.weights_for(serve["system_info"]) == defaults.WEIGHTS
    assert doctest.testmod(fidelity).failed == 0
