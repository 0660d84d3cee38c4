"""`python -m assistant score` as a script uses it: JSON out, one-line errors, exit codes."""
import json
import os
import subprocess
import sys
from pathlib import Path

THREADS = os.environ.get("CQA_THREADS", "2")
ROOT = Path(__file__).resolve().parent.parent


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "assistant", *args], cwd=ROOT, capture_output=True,
                          input=stdin, timeout=300)


def test_score_json(tmp_path):
    brief = tmp_path / "brief.json"
    brief.write_text(json.dumps({"task": "Describe the harbour.", "world": "The harbour of Vell freezes each winter."}))
    text = tmp_path / "text.txt"
    text.write_text("Every winter the harbour of Vell froze, and the boats slept in the ice.", encoding="utf-8")
    r = run("score", "--brief", str(brief), "--text", str(text), "--json", "--threads", THREADS)
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    for key in ("I", "H_X", "H_X_given_Y", "I_uncopied", "n_tokens", "tokens"):
        assert key in out
    assert out["n_tokens"] == len(out["tokens"]) > 5
    assert abs(out["I"] - (out["H_X"] - out["H_X_given_Y"])) < 1e-9
    assert abs(out["I"] - sum(t["i"] for t in out["tokens"])) < 1e-6
    assert set(out["tokens"][0]) >= {"token", "s0", "sY", "i", "copied"}
    assert "".join(t["token"] for t in out["tokens"]) == text.read_text()
    assert any(t["copied"] for t in out["tokens"])  # "the harbour of Vell" restates the brief


def test_missing_brief_fields_are_empty(tmp_path):
    brief = tmp_path / "b.json"
    brief.write_text("{}")
    r = run("score", "--brief", str(brief), "--text", "-", "--threads", THREADS, stdin=b"A short line of text.")
    assert r.returncode == 0, r.stderr.decode()
    assert "I(X;Y)" in r.stdout.decode()


def test_errors_are_one_line(tmp_path):
    bad_utf8 = tmp_path / "t.txt"
    bad_utf8.write_bytes(b"caf\xe9 au lait")
    brief = tmp_path / "b.json"
    brief.write_text('{"task": "x", "mood": "y"}')
    broken = tmp_path / "broken.json"
    broken.write_text('{"task": ')
    empty = tmp_path / "empty.txt"
    empty.write_text("  ")
    cases = [
        (("score", "--text", str(bad_utf8)), "not valid UTF-8"),
        (("score", "--brief", str(brief), "--text", str(empty)), "unknown brief field"),
        (("score", "--brief", str(broken), "--text", str(empty)), "not valid JSON"),
        (("score", "--text", str(empty)), "no text to score"),
        (("score", "--text", str(tmp_path / "nope.txt")), "cannot read text"),
        (("score", "--text", str(empty), "--model", "gpt-17"), "unknown model 'gpt-17'"),
    ]
    for args, msg in cases:
        r = run(*args)
        err = r.stderr.decode()
        assert r.returncode == 1, (args, err)
        assert msg in err and "Traceback" not in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err


def test_draft_json_with_guidance_and_the_cqa_adapter(tmp_path):
    brief = tmp_path / "brief.json"
    brief.write_text(json.dumps({"task": "Write the opening line of a story.", "world": "A lighthouse."}))
    r = run("draft", "--brief", str(brief), "--guidance", "1.5", "--max-tokens", "16", "--seed", "3", "--json",
            "--threads", THREADS)
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    assert out["guidance"] == 1.5 and out["cqa_strength"] is None and out["sampler"]["seed"] == 3
    assert out["draft"] and out["score"]["n_tokens"] == len(out["score"]["tokens"]) >= 1
    assert "".join(t["token"] for t in out["score"]["tokens"]) == out["draft"]
    r = run("draft", "--brief", str(brief), "--n", "2", "--max-tokens", "8", "--seed", "4", "--json", "--threads", THREADS)
    out = json.loads(r.stdout)
    assert r.returncode == 0 and sorted(x["seed"] for x in out["ranked"]) == [4, 5] and out["draft"] == out["ranked"][0]["draft"]
    r = run("draft", "--brief", str(brief), "--adapter", "models/cqa/adapter.gguf", "--strength", "0.5",
            "--no-notes", "--max-tokens", "12", "--json", "--threads", THREADS)
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["cqa_strength"] == 0.5 and out["notes"] == "" and out["model"]["strength"] == 0.5


def test_draft_bad_values_are_listed_in_one_line(tmp_path):
    brief = tmp_path / "brief.json"
    brief.write_text(json.dumps({"task": "Write a line."}))
    r = run("draft", "--brief", str(brief), "--guidance", "-1", "--strength", "9", "--temperature", "5")
    assert r.returncode == 1
    assert r.stderr.decode().strip() == ("error: temperature 5.0 must be between 0 and 2; guidance -1.0 must be "
                                         "between 0 and 3; --strength 9.0 must be between 0 and 2")
