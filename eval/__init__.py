"""Evaluation of CQA against its base: ΔI on paired passages, generations, scorer cross-check.

    python -m eval pairs --pairs eval/data/pairs.jsonl --out eval/out/pairs

The entry point (`__main__`) reads flags and environment into `settings.Settings` and picks the readers.
Commands: `pair_eval` (pairs), `generate`, `grid` + `grid_report` (grid), `crosscheck`, `choose`.
The kit they share: `variants` (base and adapters), `cache` (the score cache), `readers` (models that score,
and the one cached reading loop; `ray_readers` on Ray), `writers` (models that write drafts), `pairs` (the
pair and brief files). Reports: `report`, `tables`, `plot`, `transcript`; math: `stats`, `textstats`, `copyrule`.
"""
