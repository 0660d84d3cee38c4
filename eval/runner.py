"""Former home of eval's shared kit, kept only for importers outside eval/ that have not moved yet
(tests/test_hub.py: parse_adapters; bench/engine.py: default_pairs_files). New code imports from the modules
named after what they hold: eval.variants, eval.pairs, eval.cache, eval.readers, eval.pair_eval.

    python -m eval pairs --out eval/out/pairs      # the pairs command lives in eval/pair_eval.py
"""
from .pairs import default_pairs_files  # noqa: F401
from .variants import parse_adapters  # noqa: F401
