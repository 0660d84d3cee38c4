"""Where llama.cpp puts the weights: extra buffer types off on CPUs with AMX (llama.cpp issue 20824), the
start-up probe that decodes in a child process and falls back when the child dies."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import catalog, llama, probe
from assistant.engine import Engine
from assistant.errors import BadInput, BadModelFile
from assistant.pool import Pool, PoolConfig

ROOT = Path(__file__).resolve().parent.parent
THREADS = int(os.environ.get("CQA_THREADS", "2"))
# llama.cpp 0.3.36's system info on an Intel Xeon with AMX (the features of the issue's machine) and on an AMD VM
XEON_AMX = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
            "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")
EPYC = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | "
        "OPENMP = 1 | REPACK = 1 | ")     # read off this project's 2-core AMD EPYC VM
SEGFAULT = [sys.executable, "-c", "import faulthandler; faulthandler._sigsegv()"]   # a real native crash


def test_extra_buffer_types_are_off_on_a_cpu_with_amx():
    assert llama.choose_extra_bufts("auto", XEON_AMX)[0] is False
    assert "20824" in llama.choose_extra_bufts("auto", XEON_AMX)[1]
    assert llama.choose_extra_bufts("auto", EPYC) == (True, "on: llama.cpp's default (no AMX on this CPU)")
    assert llama.choose_extra_bufts("auto", XEON_AMX.replace("AMX_INT8 = 1", "AMX_INT8 = 0"))[0] is True
    assert llama.choose_extra_bufts("on", XEON_AMX)[0] is True      # asked for: the user's choice
    assert llama.choose_extra_bufts("off", EPYC)[0] is False
    with pytest.raises(BadInput, match="'fast' is not one of auto, on, off"):
        llama.choose_extra_bufts("fast", EPYC)
    with pytest.raises(BadInput):
        PoolConfig(extra_bufts="fast")


def test_the_engine_loads_with_the_safe_placement_where_amx_is(monkeypatch):
    monkeypatch.setattr(llama, "system_info", lambda: XEON_AMX)
    eng = Engine.load(n_threads=THREADS)
    try:
        assert eng.extra_bufts is False and eng.info()["extra_bufts"] is False
        assert eng.token_logprobs("The ferry left at", " dawn").logprobs[0] < 0   # and it decodes
    finally:
        eng.close()


def test_the_probe_survives_and_reports_its_choice(tmp_path):
    env = {**os.environ, "CQA_CACHE": str(tmp_path)}
    run = lambda: subprocess.run([sys.executable, "-m", "assistant.probe", "--threads", "1"], cwd=ROOT, env=env,  # noqa: E731
                                 capture_output=True, text=True, timeout=300)
    done = run()
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    expected = llama.choose_extra_bufts("auto", llama.system_info())[0]
    assert got["probed"] is True and got["extra_bufts"] is expected and got["system_info"].startswith("CPU")
    cached = json.loads((tmp_path / probe.PROBE_FILE).read_text())
    assert [v["extra_bufts"] for v in cached.values()] == [expected]
    assert json.loads(run().stdout) == got          # the second start reads the answer, same result


def test_a_child_that_dies_in_native_code_falls_back_to_the_safe_placement(tmp_path, caplog):
    model = catalog.resolve().path
    with caplog.at_level(logging.WARNING, logger="assistant.probe"):
        got = probe.decide(model, "on", n_threads=1, cache_dir=tmp_path, child=SEGFAULT)
    assert got == probe.Placement(False, "off: the probe with them on died (killed by signal 11)", probed=True)
    assert "loading without them" in caplog.text
    with pytest.raises(BadModelFile, match="dies decoding .* even with extra buffer types off"):
        probe.decide(model, "off", n_threads=1, cache_dir=tmp_path, child=SEGFAULT)


def test_the_pool_probes_when_asked_and_its_engine_follows(tmp_path):
    pool = Pool(PoolConfig(n_threads=THREADS, cqa=False, probe=True, cache_dir=tmp_path))
    eng = pool.get("base")
    try:
        assert pool.placement.probed and eng.extra_bufts is pool.placement.extra_bufts
        assert (tmp_path / probe.PROBE_FILE).is_file()
    finally:
        eng.close()
