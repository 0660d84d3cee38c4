"""The Annotate tab in a real browser, on a server started with --annotations FILE: fill the form, see a
validation error, fix it, save, and the file still validates with the new line at its end.

    python -m pytest -q tests/test_app_annotate.py
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import _stop, browser_page, launch_server, needs_chromium
from finetune import annotations

DATA = Path(__file__).parent / "data" / "finetune_valid.jsonl"
playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium
STEP_MS = 120_000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "annotations.jsonl"
    lines = DATA.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")   # two valid annotations already there
    return path


@pytest.fixture(scope="module")
def page(tmp_path_factory, corpus):
    server = launch_server(tmp_path_factory.mktemp("server") / "app.log", ("--annotations", str(corpus)))
    try:
        with browser_page(server.url, height=1200) as pg:
            pg.get_by_role("tab", name="Annotate", exact=True).click()
            yield pg
    finally:
        _stop(server.proc)


def expect(locator):
    return playwright_api.expect(locator)


def choose(pg, tab, label: str, option: str) -> None:
    tab.get_by_label(label, exact=True).click()
    pg.get_by_role("option", name=option, exact=True).click()


def test_fill_see_an_error_fix_it_save_and_the_file_validates(page, corpus, tmp_path):
    pg, tab = page, page.locator("#annotate-tab")
    before = corpus.read_text(encoding="utf-8")
    ann = json.loads(DATA.read_text(encoding="utf-8").splitlines()[2])     # a valid annotation, typed anew
    tab.get_by_label("Id", exact=True).fill("t-new-1")
    tab.get_by_label("Genre", exact=True).fill(ann["genre"])
    for field in ("task", "intent", "audience", "world"):
        tab.get_by_label(f"Brief: {field}", exact=True).fill(ann["brief"][field])
    tab.get_by_label("Passage", exact=True).fill(ann["passage"])
    steps = ann["reasoning"][:5]
    for i, s in enumerate(steps, 1):
        choose(pg, tab, f"Step {i} dimension", s["dimension"])
        choose(pg, tab, f"Step {i} source", s["source"])
        tab.get_by_label(f"Step {i} choice", exact=True).fill(s["choice"] if i > 1 else "words the passage lacks")
        tab.get_by_label(f"Step {i} alternative", exact=True).fill(s["alternative"])
        tab.get_by_label(f"Step {i} why", exact=True).fill(s["why"])
    problems = pg.locator("#annotate-problems")
    expect(problems).to_contain_text("reasoning[0].choice", timeout=STEP_MS)
    expect(problems).to_contain_text("does not occur in the passage")
    expect(pg.locator("#annotate-passage")).to_contain_text("Not in the passage: step 1")
    expect(pg.locator("#annotate-coverage")).to_contain_text("by source")
    pg.screenshot(path=tmp_path / "annotate-error.png", full_page=True)

    # Saving now is refused, and the file is untouched.
    pg.get_by_role("button", name="Save annotation", exact=True).click()
    expect(pg.get_by_test_id("toast-body").first).to_contain_text("Not saved", timeout=STEP_MS)
    assert corpus.read_text(encoding="utf-8") == before

    # Add and remove a row.
    pg.get_by_role("button", name="Add step", exact=True).click()
    expect(tab.get_by_label("Step 6 choice", exact=True)).to_be_visible()
    pg.get_by_role("button", name="Remove step", exact=True).click()
    expect(tab.get_by_label("Step 6 choice", exact=True)).to_be_hidden()

    # Fix the choice: valid, every choice marked in the passage, then saved.
    tab.get_by_label("Step 1 choice", exact=True).fill(steps[0]["choice"])
    expect(problems).to_contain_text("Valid", timeout=STEP_MS)
    expect(pg.locator("#annotate-passage mark")).to_have_count(5)
    pg.get_by_role("button", name="Save annotation", exact=True).click()
    expect(pg.locator("#annotate-saved")).to_contain_text("Saved t-new-1 as line 3", timeout=STEP_MS)

    after = corpus.read_text(encoding="utf-8")
    assert after.startswith(before)                       # no earlier line lost or changed
    anns = annotations.load(corpus)                       # the whole file validates
    assert [a.id for a in anns][-1] == "t-new-1" and len(anns) == 3
    saved = anns[-1]
    assert saved.passage == ann["passage"].strip() and len(saved.reasoning) == 5

    # The same id again is refused with its reason.
    pg.get_by_role("button", name="Save annotation", exact=True).click()
    expect(pg.get_by_test_id("toast-body").filter(has_text="already in the file").first).to_be_visible(timeout=STEP_MS)
    assert corpus.read_text(encoding="utf-8") == after
