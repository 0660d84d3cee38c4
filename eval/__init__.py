"""Evaluation of CQA against its base: ΔI on paired passages, generations, scorer cross-check.

    python -m eval pairs --pairs eval/data/pairs.jsonl --out eval/out/pairs
"""
