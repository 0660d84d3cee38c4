"""The page in a real browser: Debian's chromium driven by the PyPI playwright package.

    python -m pytest -q tests/test_app_browser.py      # screenshots land in tests/artifacts/

Never runs `playwright install`: it drives /usr/bin/chromium through executable_path. Buttons are matched
by exact name, because Gradio's footer has buttons with overlapping names ("Use via API").
"""
from __future__ import annotations

import difflib
import json
import re

import pytest
from conftest import browser_page, needs_chromium
STEP_MS = 180_000   # one generation or scoring step; the 2 cores are shared with other work
TASK = "Write the opening paragraph of a ghost story set in a lighthouse"
LONG_TASK = ("Write a long, detailed story of at least two thousand words about a lighthouse keeper, "
             "chapter by chapter")
ON_TOPIC = ("Mara climbed the lighthouse stairs at dusk, counting the steps her brother had counted, "
            "and the lamp room was already warm.")
OFF_TOPIC = ("Preheat the oven to 180 degrees, whisk the eggs with the sugar, and fold in the flour "
             "until the batter is smooth and glossy.")

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def page(server):
    with browser_page(server.url, accept_downloads=True) as pg:
        button(pg, "Generate").wait_for()
        yield pg


def button(pg, name: str):
    return pg.get_by_role("button", name=name, exact=True)


def expect(locator):
    return playwright_api.expect(locator)


def card_tokens(pg, card="#score-card") -> int:
    """The token count the score card states ("... bits over N tokens")."""
    m = re.search(r"bits over (\d+) tokens", pg.locator(card).inner_text())
    assert m, pg.locator(card).inner_text()
    return int(m.group(1))


def expect_error(pg, text: str) -> None:
    """A Gradio error toast with `text` (and no traceback) appears; then dismiss it, so the next check
    and the screenshots see a fresh page."""
    toast = pg.get_by_test_id("toast-body").filter(has_text=text).first
    expect(toast).to_be_visible(timeout=STEP_MS)
    assert "Traceback" not in toast.inner_text() and 'File "' not in toast.inner_text()
    for close in pg.locator(".toast-close").all():
        if close.is_visible():
            close.click()
    expect(pg.get_by_test_id("toast-body")).to_have_count(0)


def set_max_tokens(pg, n: int) -> None:
    set_number(pg, "Max tokens", n)


def set_number(pg, label: str, value) -> None:
    box = pg.get_by_label(f"number input for {label}")
    if not box.is_visible():
        pg.locator("#write-tab").get_by_text("Sampler", exact=True).click()
    box.fill(str(value))
    box.press("Enter")
    expect(pg.get_by_label(f"range slider for {label}")).to_have_value(str(value))


def test_write_tab_generate_stop_export_continue(page, artifacts, tmp_path):
    pg, write = page, page.locator("#write-tab")
    draft_box = pg.locator("#draft textarea")

    # An empty brief: a clear error in a toast, no traceback.
    button(pg, "Generate").click()
    pg.get_by_test_id("toast-body").first.wait_for(timeout=STEP_MS)
    pg.screenshot(path=artifacts / "browser-1-empty-brief.png")
    expect_error(pg, "the brief is empty: say at least what to write")

    # The model: CQA by default, with Max tokens that leave room for its notes; the base for these mechanics.
    write.get_by_text("Sampler", exact=True).click()
    max_tokens = pg.get_by_label("range slider for Max tokens")
    expect(write.get_by_label("CQA", exact=True)).to_be_checked()
    expect(max_tokens).to_have_value("1024")
    write.get_by_label("base", exact=True).check()
    expect(max_tokens).to_have_value("200")

    # Generate: a draft, the score card with real numbers, coloured tokens.
    write.get_by_label("Task").fill(TASK)
    write.get_by_label("Intent").fill("the reader should feel that the lighthouse remembers")
    set_max_tokens(pg, 24)
    button(pg, "Generate").click()
    expect(pg.locator("#score-card")).to_contain_text("Calibrated surprise I(X;Y)", timeout=STEP_MS)
    card = pg.locator("#score-card").inner_text()
    assert re.search(r"I\(X;Y\): -?\d+\.\d\d bits/token", card) and "H(X|Y)" in card
    n = card_tokens(pg)
    assert 1 <= n <= 24
    tokens = pg.locator("#token-view .tok")
    expect(tokens).to_have_count(n)
    draft = draft_box.input_value()
    joined = "".join(tokens.all_text_contents())  # newlines render as <br>; split UTF-8 shows as U+FFFD
    assert draft.strip() and difflib.SequenceMatcher(None, joined, draft.replace("\n", "")).ratio() > 0.9
    title = tokens.first.get_attribute("title")
    assert re.match(r"s0=\d+\.\d\d sY=\d+\.\d\d i=[+-]\d+\.\d\d bits", title), title
    pg.screenshot(path=artifacts / "browser-2-draft.png", full_page=True)

    # Bad input after a draft: an error, and nothing on the page is lost.
    write.get_by_label("Task").fill("")
    write.get_by_label("Intent").fill("")
    button(pg, "Generate").click()
    expect_error(pg, "the brief is empty")
    assert draft_box.input_value() == draft and card_tokens(pg) == n
    write.get_by_label("Task").fill(LONG_TASK)

    # Stop: a long draft ends early, and what was written is still scored.
    set_max_tokens(pg, 1024)
    button(pg, "Generate").click()
    pg.wait_for_function("([sel, old]) => { const v = document.querySelector(sel).value;"
                         " return v !== old && v.length >= 20; }", arg=["#draft textarea", draft], timeout=STEP_MS)
    button(pg, "Stop").click()
    expect(pg.locator("#notice")).to_contain_text("Stopped.", timeout=STEP_MS)
    stopped = card_tokens(pg)
    assert 1 <= stopped < 1024
    expect(pg.locator("#token-view .tok")).to_have_count(stopped)
    stopped_draft = draft_box.input_value()
    assert stopped_draft.strip() and stopped_draft != draft
    pg.screenshot(path=artifacts / "browser-3-stopped.png", full_page=True)

    # Export JSON: a file appears, and it holds the stopped draft with its score.
    button(pg, "Export JSON").click()
    link = pg.locator("#export-file a[data-testid='download-link']")
    expect(link).to_be_visible(timeout=STEP_MS)
    with pg.expect_download() as dl:
        link.click()
    path = tmp_path / "draft.json"
    dl.value.save_as(path)
    (artifacts / "browser-export.json").write_bytes(path.read_bytes())
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["draft"] == stopped_draft and record["brief"]["task"] == LONG_TASK
    assert record["score"]["n_tokens"] == stopped == len(record["score"]["tokens"])
    assert record["sampler"]["max_tokens"] == 1024 and "ids" not in record
    pg.screenshot(path=artifacts / "browser-4-export.png", full_page=True)

    # Continue: the stopped draft grows by a few tokens and the whole of it is scored again.
    set_max_tokens(pg, 6)
    button(pg, "Continue").click()
    expect(pg.locator("#score-card")).not_to_contain_text(f"over {stopped} tokens", timeout=STEP_MS)
    expect(pg.locator("#score-card")).to_contain_text("Calibrated surprise I(X;Y)")
    assert stopped < card_tokens(pg) <= stopped + 6
    assert draft_box.input_value().startswith(stopped_draft)


def test_write_tab_cqa_keeps_its_notes_folded(page, artifacts):
    """The tuned model (at a chosen strength) writes notes, then the passage: the draft box never holds notes
    next to a score, the passage alone is scored, and the notes sit folded under the notice. On any trajectory:
    when the notes use every token, the draft keeps them and the notice says what to do."""
    pg, write = page, page.locator("#write-tab")
    write.get_by_label("Task").fill("Write the opening paragraph of a short story")
    write.get_by_label("Intent").fill("the reader should sense the grief before it is named")
    write.get_by_label("World").fill("Ines repairs clocks in Lisbon; her father, who taught her, died in March.")
    write.get_by_label("Audience").fill("adult readers of literary fiction")
    write.get_by_label("Text so far").fill("")
    write.get_by_label("CQA", exact=True).check()
    expect(pg.get_by_label("range slider for CQA strength")).to_be_visible()
    set_number(pg, "CQA strength", 1.2)
    set_max_tokens(pg, 1024)
    set_number(pg, "Temperature", 0)
    old_card = pg.locator("#score-card").inner_text()
    button(pg, "Generate").click()
    notice = pg.locator("#notice")
    expect(notice).to_contain_text("before the passage", timeout=2 * STEP_MS)   # folded notes, or why none
    draft = pg.locator("#draft textarea").input_value()
    notes = pg.locator("#notice details")
    if notes.count() == 0:   # the notes used every token: they stay in the draft, Continue goes on
        assert draft.lstrip().startswith("Notes:") and "Continue" in notice.inner_text()
        return
    expect(notes).to_contain_text("The model's notes before the passage")
    expect(pg.locator("#score-card")).not_to_have_text(old_card)
    assert draft.strip() and "Passage:" not in draft, draft[:300]
    assert card_tokens(pg) == pg.locator("#token-view .tok").count() >= 1
    expect(pg.locator("#score-card")).to_contain_text("CQA strength 1.2")
    notes.locator("summary").click()
    assert notes.inner_text().count("[") >= 1   # notes are "- [axis/level] chosen over rejected: why" lines
    pg.screenshot(path=artifacts / "browser-write-cqa-notes.png", full_page=True)


def test_passage_only_model_writes_at_once_and_compares_with_the_base(page, artifacts):
    """The third model: the passage-only adapter has a strength but no "Reason first" (it never writes notes),
    a passage-sized Max tokens, a scored draft from its first token; Compare can put it beside the base."""
    pg, write = page, page.locator("#write-tab")
    write.get_by_label("Task").fill(TASK)
    write.get_by_label("CQA-passage", exact=True).check()
    expect(pg.get_by_label("range slider for CQA strength")).to_be_visible()
    expect(pg.locator("#reason-first")).to_be_hidden()
    expect(pg.get_by_label("range slider for Max tokens")).to_have_value("200")
    set_max_tokens(pg, 24)
    set_number(pg, "CQA strength", 1)
    button(pg, "Generate").click()
    card = pg.locator("#score-card")
    # this draft's own card: the last test's ("CQA strength 1.2; ...") matched "CQA strength 1" before it finished
    expect(card).to_contain_text("CQA strength 1;", timeout=STEP_MS)
    expect(card).to_contain_text("Calibrated surprise I(X;Y)")
    draft = pg.locator("#draft textarea").input_value()
    assert draft.strip() and not draft.lstrip().startswith(("Notes:", "Passage:")), draft[:200]
    assert pg.locator("#notice details").count() == 0 and card_tokens(pg) >= 1
    pg.screenshot(path=artifacts / "browser-write-passage-model.png", full_page=True)

    pg.get_by_role("tab", name="Compare", exact=True).click()
    pg.locator("#compare-tuned").get_by_label("CQA-passage", exact=True).check()
    button(pg, "Generate with both").click()
    verdict = pg.locator("#compare-verdict")   # (an earlier comparison's verdict names CQA, not CQA-passage)
    expect(verdict).to_contain_text(re.compile(r"vs CQA-passage -?\d+\.\d{3} bits/token"), timeout=2 * STEP_MS)
    expect(pg.locator("#compare-cqa")).to_contain_text("Calibrated surprise I(X;Y)")
    pg.screenshot(path=artifacts / "browser-compare-passage.png", full_page=True)
    pg.locator("#compare-tuned").get_by_label("CQA", exact=True).check()
    pg.get_by_role("tab", name="Write", exact=True).click()
    write.get_by_label("base", exact=True).check()


def test_write_tab_scores_live_while_the_draft_streams(page, artifacts):
    """The score is there while the draft is written (twin stream), then the full card, with the guidance
    that wrote it."""
    pg, write = page, page.locator("#write-tab")
    write.get_by_label("base", exact=True).check()
    write.get_by_label("Task").fill(TASK)
    write.get_by_label("World").fill("Mara keeps the lighthouse on Skerry Rock; her brother drowned there in 1953.")
    set_number(pg, "Temperature", 0.8)
    set_number(pg, "Brief guidance", 0.5)
    set_max_tokens(pg, 160)
    button(pg, "Generate").click()
    card = pg.locator("#score-card")
    expect(card).to_contain_text("Calibrated surprise so far", timeout=STEP_MS)
    live = pg.locator("#token-view .tok").count()
    assert live >= 1
    pg.screenshot(path=artifacts / "browser-live-score.png", full_page=True)
    expect(card).to_contain_text("Calibrated surprise I(X;Y)", timeout=STEP_MS)
    expect(card).to_contain_text("brief guidance α = 0.5")
    assert card_tokens(pg) >= live and pg.locator("#token-view .tok").count() == card_tokens(pg)
    set_number(pg, "Brief guidance", 0)


def test_best_of_n_shows_the_drafts_ranked_and_opens_any(page, artifacts):
    pg, write = page, page.locator("#write-tab")
    write.get_by_label("base", exact=True).check()
    set_max_tokens(pg, 16)
    set_number(pg, "Drafts", 3)
    button(pg, "Generate").click()
    ranked = pg.locator("#ranked")
    expect(ranked).to_be_visible(timeout=2 * STEP_MS)
    options = ranked.get_by_role("radio")
    expect(options).to_have_count(3)
    expect(pg.locator("#notice")).to_contain_text("3 of 3 drafts, best first")
    labels = [ranked.locator("label").nth(k).inner_text() for k in range(3)]
    assert [lab.split(".")[0] for lab in labels] == ["1", "2", "3"] and all("seed" in lab for lab in labels)
    first = pg.locator("#draft textarea").input_value()
    ranked.locator("label").nth(2).click()
    expect(pg.locator("#draft textarea")).not_to_have_value(first, timeout=STEP_MS)
    expect(pg.locator("#score-card")).to_contain_text("Restates the brief")
    pg.screenshot(path=artifacts / "browser-best-of-n.png", full_page=True)
    set_number(pg, "Drafts", 1)


def test_compare_tab_streams_both_and_says_which_scored_higher(page, artifacts):
    pg = page
    set_max_tokens(pg, 32)
    pg.get_by_role("tab", name="Compare", exact=True).click()
    button(pg, "Generate with both").click()
    base_side, cqa_side = pg.locator("#compare-base"), pg.locator("#compare-cqa")
    expect(base_side).to_contain_text("Calibrated surprise I(X;Y)", timeout=STEP_MS)
    verdict = pg.locator("#compare-verdict")   # this comparison's: an earlier one may have named CQA-passage
    expect(verdict).to_contain_text(re.compile(r"vs CQA -?\d+\.\d{3} bits/token|no scored passage"),
                                    timeout=2 * STEP_MS)
    text = verdict.inner_text()
    if "higher" in text:
        assert re.search(r"\(base -?\d+\.\d{3} vs CQA -?\d+\.\d{3} bits/token\)", text), text
        expect(cqa_side).to_contain_text("Calibrated surprise I(X;Y)")
    else:   # 32 tokens can end inside the tuned model's notes: it says so
        expect(cqa_side).to_contain_text("before the passage")
    pg.screenshot(path=artifacts / "browser-compare.png", full_page=True)
    pg.get_by_role("tab", name="Write", exact=True).click()


def test_score_tab_compares_two_versions(page, artifacts):
    pg = page
    pg.get_by_role("tab", name="Score", exact=True).click()
    tab = pg.locator("#score-tab")
    tab.get_by_label("Task").fill(TASK)
    tab.get_by_label("World").fill("Mara keeps the lighthouse on Skerry Rock; her brother drowned there in 1953.")
    tab.get_by_label("Version A").fill(ON_TOPIC)
    tab.get_by_label("Version B (optional)").fill(OFF_TOPIC)
    button(pg, "Score").click()
    verdict = pg.locator("#score-verdict")
    expect(verdict).to_contain_text("has the higher calibrated surprise", timeout=STEP_MS)
    # The version written for the brief wins (the API test asserts the same ranking through /score).
    expect(verdict).to_contain_text("Version A has the higher calibrated surprise")
    expect(pg.locator("#score-card-a")).to_contain_text("Version A")
    expect(pg.locator("#score-card-b")).to_contain_text("Version B")
    assert pg.locator("#token-view-a .tok").count() == card_tokens(pg, "#score-card-a") >= 10
    assert pg.locator("#token-view-b .tok").count() == card_tokens(pg, "#score-card-b") >= 10
    pg.screenshot(path=artifacts / "browser-5-score-tab.png", full_page=True)
