"""A scored text as a writer sees it: the score card in words, coloured tokens, the plot, exports.

Presentation only: takes a ScoredText (or its JSON) and returns Markdown, HTML, a
matplotlib figure or export documents. No model, no Gradio.
"""
from __future__ import annotations

import html
import json

from .surprise import CLASS_HELP

COLOUR_SCALE_BITS = 6.0  # |i_t| at which a token's colour saturates
WEAK_WORDS = {"unexplained": "unexplained by the brief", "cliche": "cliché", "noise": "noise"}


def live_markdown(result: dict) -> str:
    """The score while the draft streams: one line."""
    overlap = result.get("brief_overlap")
    return (f"**Calibrated surprise so far: {result['I_per_token']:.2f} bits/token** ({result['I']:.0f} bits over "
            f"{result['n_tokens']} tokens; without copied spans {result['I_uncopied_per_token']:.2f}"
            + (f"; restates the brief: {100 * overlap:.0f} % of word pairs" if overlap is not None else "")
            + ") · writing…")


def card_markdown(result: dict, label: str = "") -> str:
    """The score card: I, H(X), H(X|Y) as totals and bits/token, in plain words."""
    r = result
    head = f"### {label}\n" if label else ""
    c = r["classes"]
    return head + "\n".join([
        f"**Calibrated surprise I(X;Y): {r['I_per_token']:.2f} bits/token** "
        f"({r['I']:.0f} bits over {r['n_tokens']} tokens). How much your brief explains each word "
        "that would be surprising on its own: higher means fresher choices that still follow from the brief.",
        "",
        f"- **Surprise without the brief, H(X):** {r['H_X_per_token']:.2f} bits/token "
        f"({r['H_X']:.0f} bits): how unexpected the text is to a reader who knows nothing of the brief.",
        f"- **Surprise given the brief, H(X|Y):** {r['H_X_given_Y_per_token']:.2f} bits/token "
        f"({r['H_X_given_Y']:.0f} bits): how unexpected it is to a reader who knows the brief. Low is good.",
        _overlap_line(r) +
        f"- **Copied from the brief:** {r['n_copied']} tokens carry {r['I_copied']:.0f} bits of I. "
        f"Without them, I = {r['I_uncopied_per_token']:.2f} bits/token: repeating the brief's words "
        "earns nothing here.",
        f"- **Tokens:** {c['surprise']} calibrated surprise, {c['noise']} noise, "
        f"{c['cliche']} cliché, {c['plain']} plain.",
        f"- Prompt template: `{r.get('template', '?')}`." + _written_with(r),
        "",
        reach_markdown(),
    ])


# What the score can and cannot tell at this model size (README, "Revise with the judge"; measured on the
# 40 literary and 20 factual pairs of eval/data/pairs.jsonl, chat template, SmolLM2-135M-Instruct Q4_1).
REACH = ("What this score can tell at 135M parameters: told an excellent literary passage from its degraded "
         "twin in 50 % of pairs with the base model (chance) and 75 % with CQA; factual pairs 80 % (60 % "
         "without copied spans). Text-level differences under ~0.04 bits/token are within the scorer's own "
         "precision, and one token's i is one sample: read a token's class or a weak sentence as a hint, not "
         "a verdict. Restating the brief always raises I: read it beside the overlap.")


def reach_markdown() -> str:
    """The honest footnote under the card (REACH)."""
    return f"<details><summary>What the score can and cannot tell</summary>\n\n{REACH}\n\n</details>"


def _overlap_line(r: dict) -> str:
    """Brief overlap and length, in words: the guard against a draft that restates the brief."""
    if r.get("brief_overlap") is None:
        return ""
    return (f"- **Restates the brief: {100 * r['brief_overlap']:.0f} % of word pairs** ({r['n_words']} words). "
            "I rises when a text repeats the brief's own words, so read a high I beside this.\n")


def _written_with(r: dict) -> str:
    """Which guidance and CQA strength wrote the draft (absent for pasted text)."""
    bits = []
    if r.get("guidance") is not None:
        bits.append(f"brief guidance α = {r['guidance']:g}" + (" (plain sampling)" if not r["guidance"] else ""))
    if r.get("cqa_strength") is not None:
        bits.append(f"CQA strength {r['cqa_strength']:g}")
    if not bits:
        return ""
    return (" Written with " + ", ".join(bits) + "; the score is always the unguided model's, so every "
            "draft is judged by the same measure.")


def tokens_html(result: dict, weak: list[tuple[int, int, str]] = ()) -> str:
    """The text re-rendered token by token, coloured by i_t (green: the brief explains it; red: it fights
    the brief); copied tokens are underlined. Hover shows s0, sY, i and the class; each token carries its
    position (data-t) for the alternatives panel. `weak`: (first token, end token, kind) of the weak
    sentences (assistant/weakspots.py), outlined in orange."""
    spans = []
    kind_at = {t: kind for a, b, kind in weak for t in range(a, b)}
    for k, t in enumerate(result["tokens"]):
        i = t["i"]
        a = min(abs(i) / COLOUR_SCALE_BITS, 1.0) * 0.75
        rgb = "34,160,90" if i >= 0 else "210,60,60"
        style = f"background: rgba({rgb},{a:.2f}); cursor: pointer;"
        if t["copied"]:
            style += " text-decoration: underline dotted; text-decoration-thickness: 2px;"
        weak_cls = ""
        if k in kind_at:
            style += " border-bottom: 2px solid rgb(230,140,20);"
            weak_cls = f" tok-weak tok-weak-{kind_at[k]}"
        tip = (f"s0={t['s0']:.2f} sY={t['sY']:.2f} i={i:+.2f} bits; {CLASS_HELP[t['class']]}"
               + ("; copied from the brief" if t["copied"] else "")
               + (f"; in a weak sentence ({WEAK_WORDS.get(kind_at[k], kind_at[k])})" if k in kind_at else ""))
        text = html.escape(t["token"]).replace("\n", "<br>")
        spans.append(f'<span class="tok tok-{t["class"]}{weak_cls}" data-t="{k}" title="{html.escape(tip)}" '
                     f'style="{style}">{text}</span>')
    legend = ('<div class="tok-legend" style="font-size:0.85em;opacity:0.8;margin-top:0.5em">'
              "green: the brief explains the token (i &gt; 0) · red: the brief makes it less likely · "
              "dotted underline: copied from the brief · orange line: a weak sentence · hover a token for its "
              "numbers, click it for its alternatives</div>")
    return ('<div class="cqa-tokens" style="line-height:1.9;white-space:pre-wrap;font-family:Georgia,serif">'
            + "".join(spans) + "</div>" + legend)


def surprisal_figure(result: dict, title: str = ""):
    """Per-token surprisal with (sY) and without (s0) the brief, bits."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s0 = [t["s0"] for t in result["tokens"]]
    sY = [t["sY"] for t in result["tokens"]]
    fig, ax = plt.subplots(figsize=(8, 2.8), dpi=100)
    ax.plot(s0, label="without the brief, s0", color="#888888", linewidth=1)
    ax.plot(sY, label="with the brief, sY", color="#1f77b4", linewidth=1)
    ax.fill_between(range(len(s0)), sY, s0, where=[a >= b for a, b in zip(s0, sY)], color="#2ca05a",
                    alpha=0.25, interpolate=True, label="explained by the brief")
    ax.set_xlabel("token")
    ax.set_ylabel("surprisal, bits")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def comparison_markdown(a: dict, b: dict, names: tuple[str, str] = ("A", "B")) -> str:
    """Which of two versions has the higher I per token, and by how much."""
    na, nb = names
    d = a["I_per_token"] - b["I_per_token"]
    du = a["I_uncopied_per_token"] - b["I_uncopied_per_token"]
    if abs(d) < 1e-12:
        verdict = f"**{na} and {nb} have the same I per token.**"
    else:
        win = na if d > 0 else nb
        verdict = f"**{'Version ' if len(win) == 1 else ''}{win} has the higher calibrated surprise**, by {abs(d):.3f} bits/token"
    return (f"{verdict} ({na} {a['I_per_token']:.3f} vs {nb} {b['I_per_token']:.3f} bits/token).  \n"
            f"Without spans copied from the brief: {na} {a['I_uncopied_per_token']:.3f} vs "
            f"{nb} {b['I_uncopied_per_token']:.3f} (difference {du:+.3f}).")


def export_json(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, indent=1)


def export_markdown(record: dict) -> str:
    """A draft with its brief, settings and scores, as a Markdown document."""
    b = record["brief"]
    r = record["score"]
    lines = ["# Draft", "", record["draft"], "", "## Brief", ""]
    lines += [f"- **{k}:** {v}" for k, v in b.items() if v]
    lines += ["", "## Scores", "", card_markdown(r), "", "## Settings", "",
              f"- model: {record.get('model', '?')}"]
    lines += [f"- {k}: {v}" for k, v in record.get("sampler", {}).items()]
    return "\n".join(lines) + "\n"
