"""The engine on Ray Serve: a local Ray cluster (2 CPUs) with 2 replicas of 1 thread each, against the same
engine in this process.

    python -m pytest -q tests/test_ray.py
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from assistant import writer
from assistant.brief import Brief
from assistant.engine import Engine
from assistant.errors import UnknownModel
from assistant.pool import Pool, PoolConfig
from assistant.sampler import Sampler

ray = pytest.importorskip("ray")
BRIEF = Brief(task="Write the opening line of a story.", world="A lighthouse on a treeless island.")


@pytest.fixture(scope="module")
def backend():
    from ray import serve

    from assistant import ray_backend
    handle = ray_backend.deploy(PoolConfig(), ray_backend.ServeConfig("auto", replicas=2, local_cpus=2))
    yield ray_backend.RayBackend(handle)
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def local():
    # the replicas' thread count and weights (what the app serves here): the same sums, the same draft
    e = Engine.load(n_threads=1, weights=Pool(PoolConfig()).weights())
    yield e
    e.close()


def test_same_draft_and_score_as_in_process(backend, local):
    assert backend.variants() == ["base", "CQA", "CQA-passage"]   # every shipped model, on every replica
    s = Sampler(seed=3, max_tokens=16)
    remote = list(backend.write(BRIEF, s, variant="base"))
    here = writer.complete(local, BRIEF, s)
    assert remote[-1].done and remote[-1].text == here.text
    assert remote[-1].result.score.I == pytest.approx(here.result.score.I, abs=1e-9)
    assert any(u.result is not None for u in remote[:-1])           # the live score streams through Serve
    assert backend.score(BRIEF, "The lamp was lit.", variant="base")["I"] == pytest.approx(
        writer.score(local, BRIEF, "The lamp was lit.").score.I, abs=1e-9)
    cqa = local.variant("models/cqa/adapter.gguf", 0.5)
    assert backend.score(BRIEF, "The lamp was lit.", variant="CQA")["I"] != pytest.approx(
        writer.score(local, BRIEF, "The lamp was lit.").score.I, abs=1e-6)
    assert backend.tokenize("The lamp.", variant="CQA", strength=0.5) == cqa.tokenize_text("The lamp.")
    passage = writer.score(local.variant("models/cqa-passage/adapter.gguf"), BRIEF, "The lamp was lit.").score.I
    assert backend.score(BRIEF, "The lamp was lit.", variant="CQA-passage")["I"] == pytest.approx(passage, abs=1e-9)


def test_revision_tools_on_ray_match_in_process(backend, local):
    """Issue 22's backend methods on the replicas: the same alternatives, rewrite and suggestions as here."""
    from assistant import revise
    from assistant.errors import BadInput
    text = "Mara lit the lamp at dusk. It was a nice day and everything was good. The sea was calm."
    remote = backend.scored(BRIEF, text, variant="base")
    here = writer.score(local, BRIEF, text)
    assert remote.top is not None and (remote.top.ids == here.top.ids).all()
    rows = backend.alternatives(remote, 3, variant="base")
    assert rows == [a.to_json() for a in revise.alternatives(local, here, 3)]
    token = next(r["token"] for r in rows if not r["written"])
    ids = local.tokenize_text(text)
    s = Sampler(seed=2, max_tokens=20)
    got = list(backend.rewrite(BRIEF, s, ids, 3, token, variant="base"))
    want = list(revise.rewrite(local, BRIEF, s, "chat", ids, 3, token))
    assert got[-1].ids[3] == token and got[-1].text == want[-1].text
    found = backend.suggest(BRIEF, text, 27, 69, Sampler(seed=0), variant="base", n=1)
    assert found == [x.to_json() for x in revise.suggest(local, BRIEF, text, 27, 69, Sampler(seed=0), n=1)]
    with pytest.raises(BadInput, match="outside the text"):
        backend.alternatives(remote, 999, variant="base")


def test_bad_input_is_the_users_error_not_a_ray_error(backend):
    with pytest.raises(writer.BriefError, match="the brief is empty"):
        list(backend.write(Brief(), Sampler(), variant="base"))
    with pytest.raises(UnknownModel, match="unknown variant 'gpt'"):
        backend.score(BRIEF, "x", variant="gpt")


def test_a_replica_killed_mid_draft_is_retried_and_others_are_unaffected(backend, local):
    from ray import serve

    s = Sampler(seed=5, max_tokens=120)
    other = {}

    def second_user():
        other["end"] = list(backend.write(BRIEF, Sampler(seed=8, max_tokens=40), variant="base"))[-1]
    seen, killed = [], None
    t = threading.Thread(target=second_user)
    for u in backend.write(BRIEF, s, variant="base"):
        seen.append(u)
        if killed is None and len(seen) == 5 and u.replica:
            killed = u.replica
            t.start()
            os.kill(killed, signal.SIGKILL)
    t.join(timeout=300)
    end = seen[-1]
    assert killed is not None and end.done
    assert any("replica was lost" in u.notice for u in seen)         # the user is told, and the draft restarts
    assert end.text == writer.complete(local, BRIEF, s).text          # the same seed: the same draft
    assert end.replica != killed
    assert other["end"].done and other["end"].result is not None     # the other user got a whole draft
    deadline = time.monotonic() + 120                                 # Ray brings the replica back
    while time.monotonic() < deadline:
        app = serve.status().applications.get("cqa-engine")
        dep = app.deployments["EngineReplica"] if app else None
        if dep and dep.replica_states.get("RUNNING", 0) == 2:
            break
        time.sleep(1)
    assert dep.replica_states.get("RUNNING", 0) == 2, dep.replica_states

