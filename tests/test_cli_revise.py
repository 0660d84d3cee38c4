"""The revision verbs as scripts use them: `python -m assistant alternatives | rewrite | weak | suggest`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

THREADS = os.environ.get("CQA_THREADS", "2")
ROOT = Path(__file__).resolve().parent.parent
TEXT = ("Mara climbed the lighthouse stairs at dusk. It was a nice day and everything was good. "
        "The lamp room was already warm.")


def run(*args):
    return subprocess.run([sys.executable, "-m", "assistant", *args, "--threads", THREADS], cwd=ROOT,
                          capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "brief.json").write_text(json.dumps({"task": "Write the opening paragraph of a ghost story set in a lighthouse"}))
    (d / "text.txt").write_text(TEXT, encoding="utf-8")
    return ["--brief", str(d / "brief.json"), "--text", str(d / "text.txt")]


def test_alternatives_then_rewrite_with_one(files):
    r = run("alternatives", *files, "--position", "3", "--json")
    assert r.returncode == 0, r.stderr.decode()
    rows = json.loads(r.stdout)["alternatives"]
    assert len(rows) >= 10 and sum(a["written"] for a in rows) == 1 and rows[0]["p"] >= rows[1]["p"]
    k = next(k for k, a in enumerate(rows, 1) if not a["written"])
    r = run("rewrite", *files, "--position", "3", "--alternative", str(k), "--seed", "2", "--max-tokens", "30",
            "--json")
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    assert out["token"] == rows[k - 1]["token"] and out["score"]["tokens"][3]["token"] == rows[k - 1]["text"]
    assert out["text"].startswith("Mara climbed" + rows[k - 1]["text"])


def test_weak_and_suggest(files):
    r = run("weak", *files, "--json")
    assert r.returncode == 0, r.stderr.decode()
    weak = json.loads(r.stdout)
    assert len(weak["sentences"]) == 3 and weak["weak"]
    r = run("suggest", *files, "--n", "1", "--json")
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    assert out["sentence"]["index"] == weak["weak"][0] and len(out["suggestions"]) <= 1
    for x in out["suggestions"]:
        assert x["sentence"] in x["text"] and out["sentence"]["text"] not in x["text"]


def test_bad_position_is_one_line(files):
    r = run("alternatives", *files, "--position", "999")
    assert r.returncode == 1 and r.stdout == b""
    err = r.stderr.decode().strip()
    assert err.startswith("error: position 999 is outside the text") and "\n" not in err
    r = run("suggest", *files, "--sentence", "9")
    assert r.returncode == 1 and "outside the text: it has 3 sentences" in r.stderr.decode()
