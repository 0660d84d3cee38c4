"""The revision tools in a real browser (Debian's chromium driven by the PyPI playwright package): click a token,
see its alternatives, rewrite from one, Undo; on a pasted text, Suggest a rewrite of a weak sentence and Insert it.

    python -m pytest -q tests/test_app_revise_browser.py     # writes docs/screenshot-alternatives.png
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import browser_page, needs_chromium
STEP_MS = 180_000   # one generation or scoring step on 2 shared cores
DOCS = Path(__file__).resolve().parent.parent / "docs"
TASK = "Write the opening paragraph of a ghost story set in a lighthouse"
INTENT = "the reader should feel that the lighthouse remembers"
TEXT = ("Mara climbed the lighthouse stairs at dusk, counting the steps her brother had counted. "
        "It was a nice day and everything was good. The lamp room was already warm.")

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def page(server):
    with browser_page(server.url) as pg:
        pg.get_by_role("button", name="Generate", exact=True).wait_for()
        yield pg


def expect(locator):
    return playwright_api.expect(locator)


def labels(pg, radio: str) -> list[str]:
    return [x.strip() for x in pg.locator(f"{radio} label").all_inner_texts()]


def test_click_a_token_rewrite_from_an_alternative_and_undo(page, artifacts):
    pg, write = page, page.locator("#write-tab")
    write.get_by_label("base", exact=True).check()
    write.get_by_label("Task").fill(TASK)
    write.get_by_label("Intent").fill(INTENT)
    write.get_by_text("Sampler", exact=True).click()
    box = pg.get_by_label("number input for Max tokens")
    box.fill("30")
    box.press("Enter")
    write.get_by_role("button", name="Generate", exact=True).click()
    expect(pg.locator("#score-card")).to_contain_text("Calibrated surprise I(X;Y)", timeout=STEP_MS)
    expect(pg.locator("#score-card")).to_contain_text("What the score can and cannot tell")
    before = pg.locator("#draft textarea").input_value()
    tokens = pg.locator("#token-view .tok")
    t = 5
    picked = tokens.nth(t).inner_text()

    tokens.nth(t).click()                       # the panel: the alternatives at that position
    expect(pg.locator("#write-alternatives")).to_be_visible(timeout=STEP_MS)
    expect(pg.locator("#write-alt-head")).to_contain_text(f"Token {t}:")
    expect(pg.locator("#write-alt-head")).to_contain_text("sorted by probability under the brief")
    rows = labels(pg, "#write-alternatives")
    assert len(rows) >= 10 and sum("· written" in r for r in rows) == 1
    pct = r"(\d+\.\d|0\.\d+|0|< 0\.001) %"      # two significant digits below 1 %
    assert all(re.search(rf"p\(x\|Y\) {pct} · p\(x\) {pct} · i [+-]\d+\.\d\d bits", r) for r in rows), rows
    assert all(any(w in r for w in ("calibrated surprise", "cliché", "noise", "plain")) for r in rows)
    assert picked.strip() in next(r for r in rows if "· written" in r)

    pg.locator("#write-alt-sort").get_by_text("i (bits the brief explains)").click()   # sort by i
    expect(pg.locator("#write-alt-head")).to_contain_text("sorted by i (bits", timeout=STEP_MS)
    by_i = labels(pg, "#write-alternatives")
    assert sorted(r.split(". ", 1)[1] for r in by_i) == sorted(r.split(". ", 1)[1] for r in rows)   # same rows
    i_values = [float(re.search(r"i ([+-]\d+\.\d\d) bits", r).group(1)) for r in by_i]
    assert i_values == sorted(i_values, reverse=True)
    pg.locator("#write-alt-sort").get_by_text("probability under the brief").click()
    expect(pg.locator("#write-alt-head")).to_contain_text("sorted by probability", timeout=STEP_MS)
    assert labels(pg, "#write-alternatives") == rows

    k = next(k for k, r in enumerate(rows) if "· written" not in r)
    chosen = re.match(r"\d+\. '(.*?)' ·", rows[k]).group(1)
    pg.locator("#write-alternatives label").nth(k).click()
    pg.locator("#write-revise").scroll_into_view_if_needed()
    pg.screenshot(path=artifacts / "revise-1-alternatives.png", full_page=True)
    _screenshot_panel(pg, DOCS / "screenshot-alternatives.png")
    write.get_by_role("button", name="Rewrite from here", exact=True).click()
    expect(pg.locator("#notice")).to_contain_text(f"Rewritten from token {t}", timeout=STEP_MS)
    after = pg.locator("#draft textarea").input_value()
    kept = "".join(tokens.nth(j).inner_text() for j in range(t))   # the rewritten view: the same first t tokens
    assert after != before and after.startswith(kept + chosen), (kept, chosen, after)
    n = int(re.search(r"bits over (\d+) tokens", pg.locator("#score-card").inner_text()).group(1))
    expect(tokens).to_have_count(n)
    pg.screenshot(path=artifacts / "revise-2-rewritten.png", full_page=True)

    write.get_by_role("button", name="Undo", exact=True).click()
    expect(pg.locator("#notice")).to_contain_text("Undone", timeout=STEP_MS)
    assert pg.locator("#draft textarea").input_value() == before
    write.get_by_role("button", name="Undo", exact=True).click()   # nothing left to undo: one clear message
    toast = pg.get_by_test_id("toast-body").filter(has_text="nothing to undo").first
    expect(toast).to_be_visible(timeout=STEP_MS)
    assert "Traceback" not in toast.inner_text()


def test_weak_sentence_suggest_and_insert_on_a_pasted_text(page, artifacts):
    pg = page
    pg.get_by_role("tab", name="Score").click()
    tab = pg.locator("#score-tab")
    tab.get_by_label("Task").fill(TASK)
    tab.get_by_label("Intent").fill(INTENT)
    tab.get_by_label("Version A").fill(TEXT)
    tab.get_by_role("button", name="Score", exact=True).click()
    expect(pg.locator("#score-card-a")).to_contain_text("Calibrated surprise", timeout=STEP_MS)
    expect(pg.locator("#score-weak")).to_contain_text("Weak spots", timeout=STEP_MS)
    assert re.search(r"(Unexplained by the brief|Cliché|Noise):", pg.locator("#score-weak").inner_text())
    expect(pg.locator("#token-view-a .tok-weak").first).to_be_visible()
    weak = labels(pg, "#score-weak-choice")
    sentence = re.match(r"1\. \[[^\]]+\] (.*)", weak[0]).group(1)
    assert sentence in TEXT

    tab.get_by_role("button", name="Suggest", exact=True).click()
    expect(pg.locator("#score-suggestions")).to_be_visible(timeout=STEP_MS)
    found = labels(pg, "#score-suggestions")
    assert found and all(re.search(r"ΔI [+-]\d\.\d{3} bits/token \(uncopied [+-]\d\.\d{3}\)", x) for x in found)
    new = re.match(r"1\. (.*) · ΔI", found[0]).group(1)
    pg.screenshot(path=artifacts / "revise-3-suggestions.png", full_page=True)

    tab.get_by_role("button", name="Insert", exact=True).click()
    expect(pg.locator("#score-verdict")).to_contain_text("Inserted", timeout=STEP_MS)
    text = tab.get_by_label("Version A").input_value()
    assert new in text and sentence not in text and text == TEXT.replace(sentence, new)
    tokens = "".join(pg.locator("#token-view-a .tok").all_inner_texts())
    assert new.replace(" ", "") in tokens.replace(" ", "")            # the whole text was scored again
    tab.get_by_role("button", name="Undo", exact=True).click()
    expect(pg.locator("#score-verdict")).to_contain_text("Undone", timeout=STEP_MS)
    assert tab.get_by_label("Version A").input_value() == TEXT


def _screenshot_panel(pg, path: Path) -> None:
    """The README's picture: the coloured tokens and the open alternatives panel of the Write tab."""
    dy = pg.evaluate("window.scrollY")           # bounding boxes are in the viewport; the clip is in the page
    top = pg.locator("#token-view").bounding_box()
    bottom = pg.locator("#write-undo").bounding_box()
    left = min(top["x"], bottom["x"]) - 8
    pg.screenshot(path=path, full_page=True, clip={"x": left, "y": top["y"] + dy - 8, "width": top["width"] + 16,
                                                   "height": bottom["y"] + bottom["height"] - top["y"] + 16})
