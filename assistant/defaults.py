"""The app's default way of writing (model, brief guidance, drafts, reason first), set from the generation grid.

The values below are what README's rule chose from the committed grid report
(eval/results/generate-grid-lockstep/report.json, `eval.grid.choose`); tests/test_defaults.py checks that they still
follow from that report, so changing them means re-running the grid, not editing this file by hand.
When the rule finds no setting that beats the reference within its guards, the defaults stay where they were
before the grid: the CQA model reasoning first, no guidance, one draft (`UNCHANGED`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Defaults:
    model: str          # "base", "cqa" or "cqa-passage": the variant the Write tab and the API start on
    guidance: float     # brief guidance alpha
    drafts: int         # best of N
    reason_first: bool  # a CQA draft writes its notes first


UNCHANGED = Defaults(model="cqa", guidance=0.0, drafts=1, reason_first=True)
# grid writer name -> (model, reason_first)
WRITERS = {"base": ("base", True), "cqa+notes": ("cqa", True), "cqa-notes": ("cqa", False),
           "passage": ("cqa-passage", False)}


def from_choice(choice: dict) -> Defaults:
    """The defaults a grid choice (`eval.grid.choose`'s answer) sets.

    >>> from_choice({"changed": False, "setting": "base α=0 N=1"})
    Defaults(model='cqa', guidance=0.0, drafts=1, reason_first=True)
    >>> from_choice({"changed": True, "writer": "cqa-notes", "alpha": 0.5, "n": 4})
    Defaults(model='cqa', guidance=0.5, drafts=4, reason_first=False)
    >>> from_choice({"changed": True, "writer": "passage", "alpha": 0.5, "n": 1}).model
    'cqa-passage'
    """
    if not choice.get("changed"):
        return UNCHANGED
    if choice["writer"] not in WRITERS:
        raise ValueError(f"the grid chose writer {choice['writer']!r}, which the app does not offer yet")
    model, reason_first = WRITERS[choice["writer"]]
    return Defaults(model=model, guidance=float(choice["alpha"]), drafts=int(choice["n"]), reason_first=reason_first)


CURRENT = UNCHANGED


# Which weights the app serves for the embedded model: the shipped Q4_1 file, or a copy made here from it
# (assistant/copies.py). Set by README's speed rule (bench/engine.py `choose`) among the copies that pass the
# fidelity gate (eval/results/fidelity/report.json), timed in bench/results/serve.json; tests/test_defaults.py
# re-applies the rule to the committed reports. Speed depends on the CPU's kernels: BF16 is fast where the CPU
# has AVX512_BF16 (measured), and emulated elsewhere, so the choice holds only where llama.cpp reports the
# features it was measured with; elsewhere the shipped file is served (not measured there).
WEIGHTS = "BF16+FA"           # the BF16 copy with llama.cpp's flash attention on
WEIGHTS_NEED = ("AVX512_BF16",)     # llama.cpp system-info features of the CPU the rule measured on


def weights_for(info: str, chosen: str = WEIGHTS, need: tuple[str, ...] = WEIGHTS_NEED) -> str:
    """The measured choice on a CPU with the features it was measured with, else the shipped file.

    >>> weights_for("CPU : AVX2 = 1 | AVX512 = 1 | AVX512_BF16 = 1 | OPENMP = 1")
    'BF16+FA'
    >>> weights_for("CPU : AVX2 = 1 | F16C = 1 | OPENMP = 1")
    'shipped'
    """
    has = all(f"{feature} = 1" in info for feature in need)
    return chosen if has else "shipped"


def served_weights(model: str | None = None) -> str:
    """What the app serves for `model` on this CPU: `weights_for` this CPU for the embedded model (None or the
    catalog's default), the model's own file for any other (copies are measured for the embedded model only).
    The one answer for the app's pool, the grid's writers and preference sampling."""
    from . import catalog, copies, llama
    if model not in (None, catalog.DEFAULT_MODEL):
        return copies.SHIPPED
    return weights_for(llama.system_info())
