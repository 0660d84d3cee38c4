"""The scorer checked against an independent implementation: llama.cpp vs transformers.

    python -m eval crosscheck --out eval/out/crosscheck

The same texts, with the same prompts, are scored by the engine (llama.cpp, Q4_1 GGUF)
and by transformers running the dequantized weights of the same GGUF in fp32
(`AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)`). Both get exactly the
token ids the engine produced (prompt + text), so the comparison is token-aligned and
tests the log-prob pass, not the tokenizers.

What agreement to require, and why: the Q4_1 weights dequantize exactly, but llama.cpp
quantizes activations to 8 bits inside its quantized matmuls (q4_1 x q8_1 dot products),
so per-token surprisals differ by a few hundredths to a tenth of a bit, without bias.
Measured on SmolLM2-135M, 20 texts of the pair set, chat template: per-token MAD 0.092 bits
(mean surprisal ~6.4 bits), mean signed difference +0.010, no drift along the text,
per-token r 0.9996; per-text I agrees within 0.039 bits/token (mean 0.014), r 0.997. A
real fault looks different: scoring one token off (misaligned logits) gives a MAD of
~5.7 bits. So we require
  * Pearson r of per-text I (bits/token) across texts >= MIN_R (0.95): eval compares
    texts by I, so both implementations must order them alike;
  * per-token mean absolute difference of s0 and sY <= MAX_MAD (0.20 bits): twice the
    quantization noise, far below any misalignment;
and report the per-token r, the mean signed difference, the per-text and per-pair (ΔI)
differences and the share of pairs where both pick the same winner. Read pair results with
the per-pair difference in mind: a pair whose |ΔI| is below ~0.04 bits/token can change
sides between implementations (1 of 10 did, lit-08: ΔI +0.011 vs -0.029).
The command exits 1 when a requirement fails.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from assistant import atomic
from assistant.errors import BadInput

from .pairs import Pair, default_pairs_files, files_info, load_pairs
from .settings import Settings
from .tables import num

log = logging.getLogger(__name__)

MIN_R = 0.95      # Pearson r of per-text I across texts
MAX_MAD = 0.20    # bits per token, mean |s_llama - s_transformers| over both passes


def pick_pairs(pairs: list[Pair], n_texts: int) -> list[Pair]:
    """ceil(n_texts / 2) pairs spread evenly over the list (both groups, every axis in turn)."""
    k = min(len(pairs), max(1, math.ceil(n_texts / 2)))
    idx = np.linspace(0, len(pairs) - 1, k).round().astype(int)
    return [pairs[i] for i in dict.fromkeys(idx.tolist())]


def agreement(a_bits: list[np.ndarray], b_bits: list[np.ndarray], a_I: list[float], b_I: list[float]) -> dict:
    """Per-token MAD and max |difference| (bits) and Pearson r of per-text I. Pure.

    >>> agreement([np.array([1.0, 2.0]), np.array([3.0])], [np.array([1.5, 2.5]), np.array([3.5])],
    ...           [0.1, 0.2, 0.3], [0.2, 0.4, 0.6])  # a constant offset of 0.5 bits: MAD 0.5, r 1
    ... # doctest: +NORMALIZE_WHITESPACE
    {'n_tokens': 3, 'mad_bits': 0.5, 'max_abs_bits': 0.5, 'mean_diff_bits': -0.5,
     'pearson_r_tokens': 1.0, 'pearson_r_I': 1.0, 'n_texts': 3}
    """
    a, b = np.concatenate(a_bits), np.concatenate(b_bits)
    d = a - b
    return {"n_tokens": int(a.size), "mad_bits": float(np.abs(d).mean()), "max_abs_bits": float(np.abs(d).max()),
            "mean_diff_bits": float(d.mean()), "pearson_r_tokens": _r(a, b), "pearson_r_I": _r(a_I, b_I),
            "n_texts": len(a_I)}


def _r(x, y) -> float | None:
    """Pearson r, rounded to 12 places (None when either side does not vary)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return None
    return round(float(np.corrcoef(x, y)[0, 1]), 12)


class TransformersScorer:
    """fp32 transformers forward on the dequantized GGUF; log-probs at given token ids."""

    def __init__(self, gguf_path: Path, n_threads: int | None = None, progress: bool = True):
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        if not progress:
            hf_logging.disable_progress_bar()
        if n_threads:
            torch.set_num_threads(n_threads)
        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                          dtype=torch.float32)
        self.model.eval()

    def logprobs(self, prompt_ids: list[int], ids: list[int]) -> np.ndarray:
        """Natural-log P(ids[t] | prompt, ids[:t]), like Engine.token_logprobs_ids."""
        torch = self.torch
        x = torch.tensor([list(prompt_ids) + list(ids)], dtype=torch.long)
        with torch.no_grad():
            logits = self.model(x).logits[0, len(prompt_ids) - 1: len(prompt_ids) - 1 + len(ids)]
        lp = torch.log_softmax(logits.double(), dim=-1)
        return lp.gather(1, torch.tensor(ids, dtype=torch.long)[:, None])[:, 0].numpy()


def _bits(lp) -> np.ndarray:
    from assistant.surprise import bits_from_logprobs
    return bits_from_logprobs(lp)


def crosscheck(engine, hf: TransformersScorer, pairs: list[Pair], template: str, progress: bool = True) -> dict:
    """Score high and degraded of each pair both ways; per-text rows and the agreement."""
    from tqdm import tqdm

    from assistant import copying, surprise
    from assistant.scoring import prompts_for

    rows = []
    for p in tqdm(pairs, desc="crosscheck", unit="pair", disable=not progress):
        prompts = prompts_for(engine, None, p.context, template)
        cond_ids = engine.tokenize_prompt(prompts.conditional)
        uncond_ids = engine.tokenize_prompt(prompts.unconditional)
        for kind, text in (("high", p.high), ("degraded", p.degraded)):
            ids = engine.tokenize_text(text)
            cpp_c = engine.token_logprobs_ids(prompts.conditional, ids)
            cpp_u = engine.token_logprobs_ids(prompts.unconditional, ids)
            copied = copying.copied_tokens(cpp_u.offsets, cpp_u.text, prompts.brief_text)
            s_cpp = surprise.score(_bits(cpp_u.logprobs), _bits(cpp_c.logprobs), copied)
            s_hf = surprise.score(_bits(hf.logprobs(uncond_ids, ids)), _bits(hf.logprobs(cond_ids, ids)), copied)
            rows.append({"pair": p.id, "group": p.group, "kind": kind, "n_tokens": len(ids),
                         "I_llama": s_cpp.I_per_token, "I_transformers": s_hf.I_per_token,
                         "I_uncopied_llama": s_cpp.I_uncopied_per_token,
                         "I_uncopied_transformers": s_hf.I_uncopied_per_token,
                         "mad_s0": float(np.abs(s_cpp.s0 - s_hf.s0).mean()),
                         "mad_sY": float(np.abs(s_cpp.sY - s_hf.sY).mean()),
                         "_cpp": np.concatenate([s_cpp.s0, s_cpp.sY]), "_hf": np.concatenate([s_hf.s0, s_hf.sY])})
    agree = agreement([r.pop("_cpp") for r in rows], [r.pop("_hf") for r in rows],
                      [r["I_llama"] for r in rows], [r["I_transformers"] for r in rows])
    by_pair = {}
    for r in rows:
        by_pair.setdefault(r["pair"], {})[r["kind"]] = r
    signs = [(x["high"]["I_llama"] > x["degraded"]["I_llama"]) == (x["high"]["I_transformers"] >
                                                                   x["degraded"]["I_transformers"])
             for x in by_pair.values() if len(x) == 2]
    agree["delta_I_sign_agreement"] = float(np.mean(signs)) if signs else None
    di = np.abs([r["I_llama"] - r["I_transformers"] for r in rows])
    agree["mad_I_per_text"], agree["max_abs_I_per_text"] = float(di.mean()), float(di.max())
    ddi = [abs((x["high"]["I_llama"] - x["degraded"]["I_llama"])
               - (x["high"]["I_transformers"] - x["degraded"]["I_transformers"]))
           for x in by_pair.values() if len(x) == 2]
    agree["mad_delta_I"] = float(np.mean(ddi)) if ddi else None
    agree["pearson_r_I_uncopied"] = _r([r["I_uncopied_llama"] for r in rows],
                                       [r["I_uncopied_transformers"] for r in rows])
    return {"texts": rows, "agreement": agree}


def markdown(res: dict) -> str:
    a, req = res["agreement"], res["required"]
    out = ["# Cross-check: llama.cpp vs transformers on the same GGUF", "",
           f"- model `{res['model']['name']}` ({Path(res['model']['path']).name}, "
           f"sha256 `{res['model']['sha256'][:16]}…`), "
           f"template **{res['template']}**; transformers fp32 on the dequantized weights, same token ids",
           f"- {a['n_texts']} texts, {a['n_tokens']} token surprisals (s0 and sY); time {res['seconds']:.0f} s", "",
           "| measure | value | required | |", "|---|---:|---:|---|",
           f"| Pearson r of per-text I | {num(a['pearson_r_I'], '.4f')} | >= {req['min_r']} | "
           f"{'ok' if res['checks']['r'] else 'FAIL'} |",
           f"| per-token mean abs. difference (bits) | {a['mad_bits']:.4f} | <= {req['max_mad']} | "
           f"{'ok' if res['checks']['mad'] else 'FAIL'} |",
           f"| per-token max abs. difference (bits) | {a['max_abs_bits']:.3f} | | |",
           f"| per-token mean signed difference (bits) | {a['mean_diff_bits']:+.4f} | | |",
           f"| Pearson r of per-token surprisals | {num(a['pearson_r_tokens'], '.5f')} | | |",
           f"| Pearson r of per-text I, uncopied tokens | {num(a['pearson_r_I_uncopied'], '.4f')} | | |",
           f"| per-text I: mean / max abs. difference (bits/token) | {a['mad_I_per_text']:.4f} / "
           f"{a['max_abs_I_per_text']:.4f} | | |",
           f"| ΔI per pair: mean abs. difference (bits/token) | {num(a['mad_delta_I'], '.4f')} | | |",
           f"| same winner (sign of ΔI) per pair | {num(a['delta_I_sign_agreement'], '.0%')} | | |", "",
           "Why these bounds: Q4_1 weights dequantize exactly, but llama.cpp quantizes activations to 8 bits "
           "in its matmuls, so unbiased per-token differences of a few hundredths to a tenth of a bit are "
           "expected; a misaligned token costs bits, not hundredths. Per-text I must rank texts the same way, "
           "since the pair differences eval tests are tenths of a bit/token.", "",
           "| pair | kind | tokens | I llama.cpp | I transformers | MAD s0 | MAD sY |",
           "|---|---|---:|---:|---:|---:|---:|"]
    out += [f"| {r['pair']} | {r['kind']} | {r['n_tokens']} | {r['I_llama']:+.4f} | {r['I_transformers']:+.4f} | "
            f"{r['mad_s0']:.4f} | {r['mad_sY']:.4f} |" for r in res["texts"]]
    return "\n".join(out) + "\n"


def run_crosscheck(args, settings: Settings) -> tuple[bool, list[Path]]:
    """The CLI command; returns (requirements met, written paths)."""
    from assistant.engine import Engine

    from . import report as rep

    files = args.pairs or default_pairs_files()
    if not files:
        raise BadInput("no pair files: pass --pairs FILE")
    if args.adapter:
        raise BadInput("crosscheck compares the base model only: leave out --adapter")
    min_r = MIN_R if args.min_r is None else args.min_r
    max_mad = MAX_MAD if args.max_mad is None else args.max_mad
    pairs = pick_pairs(load_pairs(files), args.texts)
    t0 = time.perf_counter()
    engine = Engine.load(settings.model, n_threads=settings.threads)
    try:
        hf = TransformersScorer(engine.model.path, settings.threads, progress=settings.progress)
        res = crosscheck(engine, hf, pairs, settings.template, progress=settings.progress)
    finally:
        engine.close()
    a = res["agreement"]
    res.update({"model": {"name": engine.model.name, "path": str(engine.model.path), "sha256": engine.model.sha256},
                "template": settings.template, "pairs_files": files_info(files), "seconds": time.perf_counter() - t0,
                "required": {"min_r": min_r, "max_mad": max_mad},
                "checks": {"r": a["pearson_r_I"] is not None and a["pearson_r_I"] >= min_r,
                           "mad": a["mad_bits"] <= max_mad},
                "machine": rep.machine_info(), "created": rep.now()})
    out = Path(args.out)
    paths = [out / "crosscheck.json", out / "crosscheck.md"]
    rep.save_json(paths[0], res)
    atomic.write_text(paths[1], markdown(res))
    ok = all(res["checks"].values())
    print(f"Pearson r of per-text I {num(a['pearson_r_I'], '.4f')} (required >= {min_r}), per-token MAD "
          f"{a['mad_bits']:.4f} bits (required <= {max_mad}), max {a['max_abs_bits']:.3f} bits, "
          f"per-text I within {a['max_abs_I_per_text']:.3f} bits/token, same ΔI sign in "
          f"{num(a['delta_I_sign_agreement'], '.0%')} of pairs: {'OK' if ok else 'FAILED'}")
    return ok, paths
