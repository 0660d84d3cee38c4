"""Pair/brief file formats: loading, file:line: field: message errors, and no train/eval leakage."""
import json
from pathlib import Path

import pytest

from eval.pairs import FormatError, load_briefs, load_pairs, sentences, shared_sentences

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "eval" / "data"
PAIR_SETS = sorted(DATA.glob("pairs*.jsonl"))

GOOD = {"id": "p1", "group": "literary", "axis": "cliche", "context": "A story for adults.",
        "high": "The gull took the bread and left the gull-shaped silence.",
        "degraded": "The bird took the bread and flew away into the blue sky."}


def write(tmp_path, rows, name="pairs.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_good_pairs_load_in_order_across_files(tmp_path):
    a = write(tmp_path, [GOOD, {**GOOD, "id": "p2", "group": "factual", "axis": "craft"}], "a.jsonl")
    b = write(tmp_path, [{**GOOD, "id": "p3"}], "b.jsonl")
    pairs = load_pairs([a, b])
    assert [p.id for p in pairs] == ["p1", "p2", "p3"]
    assert pairs[1].group == "factual" and pairs[2].source == f"{b}:1"


def test_every_problem_is_reported_with_file_line_and_field(tmp_path):
    path = write(tmp_path, [
        GOOD,
        {**GOOD, "group": "poetry"},                        # 2: bad group + duplicate id is not reached
        "{not json",                                        # 3
        {**GOOD, "id": "p4", "axis": "style", "extra": 1},  # 4: bad axis, unknown field
        {**GOOD, "id": "p5", "degraded": GOOD["high"]},     # 5: same text
        {**GOOD, "id": "p6", "degraded": "Short."},         # 6: not about the same length
        {k: v for k, v in GOOD.items() if k != "context"} | {"id": "p7"},  # 7: missing
        {**GOOD, "id": "p1"},                               # 8: duplicate id
        {**GOOD, "id": "p9", "high": 3},                    # 9: not a string
    ])
    with pytest.raises(FormatError) as e:
        load_pairs(path)
    problems = e.value.problems
    expect = [f"{path}:2: group: 'poetry'", f"{path}:3: not valid JSON", f"{path}:4: extra: unknown field",
              f"{path}:5: degraded: is the same text", f"{path}:6: degraded: 1 words against",
              f"{path}:7: context: missing", f"{path}:8: id: 'p1' already used at {path}:1",
              f"{path}:9: high: must be a string"]
    for want in expect:
        assert any(p.startswith(want) for p in problems), (want, problems)
    assert any(p.startswith(f"{path}:4: axis: 'style'") for p in problems)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FormatError, match="file not found"):
        load_pairs(tmp_path / "nope.jsonl")
    with pytest.raises(FormatError, match="holds no records"):
        load_pairs(write(tmp_path, []))


def test_briefs_format(tmp_path):
    good = {"id": "b1", "genre": "mystery", "task": "Write it.", "intent": "x", "audience": "y", "world": "z",
            "text_so_far": ""}
    [b] = load_briefs(write(tmp_path, [good]))
    assert b.fields == {"task": "Write it.", "intent": "x", "audience": "y", "world": "z", "text_so_far": ""}
    with pytest.raises(FormatError, match=r":1: task: must not be empty"):
        load_briefs(write(tmp_path, [{**good, "task": " "}]))


@pytest.mark.parametrize("path", PAIR_SETS + [DATA / "briefs.jsonl"], ids=lambda p: p.name)
def test_shipped_data_files_are_valid(path):
    if not path.exists():
        pytest.skip(f"{path} not written yet")
    items = load_briefs(path) if path.name == "briefs.jsonl" else load_pairs(path)
    assert items


def test_sentences_normalise():
    assert sentences("He left. The old lamp room smelled of paraffin and rain!") == \
        ["he left", "the old lamp room smelled of paraffin and rain"]
    assert sentences("“Go,” she said.\nThen: nothing.") == ["go she said", "then", "nothing"]
    assert shared_sentences(["One two three four five six. Short one."],
                            ["one, two three four five SIX!", "Short one."]) == {"one two three four five six"}


def _strings(x):
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)


def training_texts():
    corpus = ROOT / "finetune" / "data" / "cqa.jsonl"
    files = [corpus] if corpus.exists() else sorted((ROOT / "finetune" / "data" / "parts").glob("*.jsonl"))
    texts = []
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                texts += list(_strings(json.loads(line)))
            except json.JSONDecodeError:
                continue  # a part still being written; its whole lines are still checked
    return files, texts


def test_no_sentence_of_the_pair_sets_is_in_the_training_corpus():
    files, train = training_texts()
    if not files:
        pytest.skip("no training corpus yet (finetune/data/cqa.jsonl or finetune/data/parts/*.jsonl)")
    assert train, f"no annotations could be read from {[str(f) for f in files]}"
    evals = []
    for path in PAIR_SETS:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                evals += [rec.get("context", ""), rec.get("high", ""), rec.get("degraded", "")]
    shared = shared_sentences(evals, train)
    assert not shared, f"{len(shared)} sentence(s) occur in both eval pairs and training data: {sorted(shared)[:5]}"
