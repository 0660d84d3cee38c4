"""Markdown for `python -m eval generate`: the summary tables and the side-by-side transcript.

    python -m eval generate --briefs eval/data/briefs.jsonl --n 2 --out eval/out/generate
"""
from __future__ import annotations

from .pairs import BriefRecord
from .tables import md_table, num


def _cell(text: str) -> str:
    """A draft inside a Markdown table cell: no pipes, line breaks as <br>."""
    return text.strip().replace("|", "\\|").replace("\r", "").replace("\n", "<br>") or "*(empty)*"


def markdown_summary(result: dict) -> str:
    variants, readers = result["variants"], [r["name"] for r in result["readers"]]
    s = result["sampler"]
    out = ["# Generations: base vs CQA on the same briefs and seeds", "",
           f"- {result['n_briefs']} briefs x {result['n_per_brief']} seeds per variant; template "
           f"**{result['template']}**; temperature {s['temperature']}, top_p {s['top_p']}, top_k {s['top_k']}, "
           f"min_p {s['min_p']}, repeat_penalty {s['repeat_penalty']}, max_tokens {s['max_tokens']}",
           f"- base `{result['model']['name']}` (sha256 `{result['model']['sha256'][:16]}…`)"]
    out += [f"- adapter `{a['name']}`: {a['path']} (sha256 `{(a['sha256'] or '?')[:16]}…`)"
            for a in result["adapters"]]
    out += ["- readers (score every draft): " + ", ".join(f"{r['name']} ({r['template']} template)"
                                                      for r in result["readers"])] + [f"- {n}" for n in result["notes"]]
    out += ["- time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result["timing"].items()), "",
            "## Text statistics", "",
            "Tokens and words count the passage; a tuned model's notes come before it and are counted apart.", ""]
    stat = [("n", "d"), ("with_notes", ".0%"), ("notes_tokens", ".0f"), ("passage_header_added", ".0%"),
            ("with_passage", ".0%"), ("tokens", ".0f"), ("words", ".0f"), ("stopped_at_eos", ".0%"),
            ("distinct_2", ".3f"), ("distinct_2_pooled", ".3f"), ("repetition_rate", ".3f"), ("brief_overlap", ".1%")]
    out += md_table(["variant", "drafts", "with notes", "notes tokens", "'Passage:' added", "with a passage", "tokens",
                     "words", "ended by EOS", "distinct-2", "distinct-2 (pooled)", "repetition (seq-rep-4)",
                     "brief overlap (word pairs)"],
                    [[v] + [num(result["summary"][v].get(k), fmt) for k, fmt in stat] for v in variants])
    read = [("I_per_token", "+.3f"), ("I_uncopied_per_token", "+.3f"), ("H_X_per_token", ".3f"),
            ("H_X_given_Y_per_token", ".3f")]
    for r in readers:
        out += ["", f"## Scored by {r} (bits/token, mean over drafts)", ""]
        out += md_table(["variant", "scored", "I", "I (uncopied)", "H(X)", "H(X\\|Y)"],
                        [[v, str(result["summary"][v]["readers"][r]["n_scored"])]
                         + [num(result["summary"][v]["readers"][r][k], fmt) for k, fmt in read] for v in variants])
        for a in variants[1:]:
            d = result["vs_base"][a][r]
            p = "–" if d["wilcoxon_p"] is None else f"{d['wilcoxon_p']:.3f}"
            out.append(f"\n{a} vs base, paired by brief (seeds averaged, n={d['n_briefs']}): mean difference of I "
                       f"{num(d['mean_I_difference'])} bits/token, one-sided Wilcoxon p={p}, "
                       f"d_z={num(d['cohens_d'], '+.2f')}")
    out += ["", "Drafts side by side: [transcript.md](transcript.md)."]
    return "\n".join(out) + "\n"


def markdown_transcript(result: dict, briefs: list[BriefRecord]) -> str:
    variants, readers = result["variants"], [r["name"] for r in result["readers"]]
    by = {(d["brief"], d["seed"], d["variant"]): d for d in result["drafts"]}
    out = ["# Transcript: drafts side by side", "",
           "Same brief, same seed, same sampler; I in bits/token by each reader (uncopied in brackets).", ""]
    for rec in briefs:
        out += [f"## {rec.id} ({rec.genre})", ""]
        out += [f"- **{k.replace('_', ' ')}**: {v}" for k, v in rec.fields.items() if v.strip()]
        out += ["", "| seed | " + " | ".join(variants) + " |", "|---:|" + "---|" * len(variants)]
        for seed in range(result["n_per_brief"]):
            cells = []
            for v in variants:
                d = by.get((rec.id, seed, v))
                if d is None:
                    cells.append("")
                    continue
                marks = "; ".join(f"{r}: I {num(sc['I_per_token'])} ({num(sc['I_uncopied_per_token'])})"
                                  for r in readers if (sc := d["scores"].get(r)))
                cells.append(f"{_cell(d['text'])}<br><br>*{d['n_tokens']} tokens, {d['stop_reason']}; {marks}*")
            out.append(f"| {seed} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)
