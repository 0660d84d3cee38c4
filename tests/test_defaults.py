"""The app's defaults follow from the committed generation grid by README's rule, applied as code."""
import doctest
import json
from pathlib import Path

from assistant import defaults
from eval import grid

REPORT = Path(__file__).resolve().parent.parent / "eval" / "results" / "generate-grid" / "report.json"


def test_docstring_examples():
    assert doctest.testmod(defaults).failed == 0


def test_the_rule_applied_to_the_committed_grid_gives_the_app_defaults():
    report = json.loads(REPORT.read_text(encoding="utf-8"))
    again = grid.choose(report["summary"], report["choice_reader"])    # the rule, re-applied to the numbers
    assert again == report["choice"]
    assert defaults.CURRENT == defaults.from_choice(again)


def test_the_page_and_the_api_start_from_the_defaults():
    import inspect

    import app
    sig = inspect.signature(app.api_draft).parameters
    assert sig["guidance"].default == defaults.CURRENT.guidance
    assert sig["n"].default == defaults.CURRENT.drafts and sig["notes"].default == defaults.CURRENT.reason_first
    assert app.DEFAULT_VARIANT == {"base": app.BASE_LABEL, "cqa": app.CQA_LABEL}[defaults.CURRENT.model]
