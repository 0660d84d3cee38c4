"""Share on the Hugging Face Hub: the shipped adapter (model repo) and the annotation corpus (dataset repo).

    python -m finetune push --repo OWNER/NAME [--private] [--dry-run]
    python -m finetune push-data --repo OWNER/NAME [--private] [--dry-run]

Each verb stages a folder (written whole, then renamed into place: nothing half-written), with a card
generated from the manifest and the pair report (model) or the audit (dataset), then uploads it in one
commit with `HfApi.create_repo` + `upload_folder`. `--dry-run` stops after staging and lists the files.
Offline, or without a token: one clear line, exit 1. Pull: `--adapter OWNER/NAME` in the app, the CLI and
eval (`assistant.catalog.resolve_adapter`).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .errors import HubError  # noqa: F401 - raised here, imported from here by callers
from .files import atomic_dir

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "cqa"
CORPUS = ROOT / "finetune" / "data" / "cqa.jsonl"
FORMAT_DOC = ROOT / "finetune" / "FORMAT.md"
STAGE = ROOT / "finetune" / "runs" / "hub"
BASE_MODELS = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct", "gemma3-270m": "google/gemma-3-270m-it"}
MODEL_TAGS = ["lora", "gguf", "creative-writing", "llama-cpp", "calibrated-surprise"]
SPLITS = {"train": "train.jsonl", "heldout": "heldout.jsonl"}


# ---- cards ------------------------------------------------------------------------------------
def _fmt_p(p) -> str:
    return "–" if p is None else (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}")


def model_card(manifest: dict, report: dict) -> str:
    """README.md of the adapter repo: YAML metadata, then the measured result and how it was measured."""
    from huggingface_hub import ModelCard, ModelCardData

    base = manifest["base"]
    epoch = manifest["adapter"]["epoch"]
    data = ModelCardData(license="apache-2.0", base_model=BASE_MODELS.get(base["name"], base["name"]),
                         library_name="gguf", pipeline_tag="text-generation", tags=MODEL_TAGS, language=["en"])
    rows = []
    for group in ("literary", "factual"):
        g = report["groups"][group]
        d = g["delta_delta"].get(f"epoch-{epoch}")
        if d:
            rows.append(f"| {group} | {g['n']} | {d['mean']:+.3f} | {_fmt_p(d['wilcoxon_p'])} | {d['cohens_d']:.2f} |")
    body = f"""
# CQA adapter for {base['name']} (LoRA, GGUF)

A LoRA adapter that tunes **{base['file']}** toward *creative quality* (Creative Quality Alignment): trained
on {manifest['data']['n_train']} expert chain-of-thought annotations (the model learns to write short notes,
then the passage). It loads in llama.cpp (`--lora adapter.gguf`) and in the CQA writing assistant
(`python app.py --adapter OWNER/NAME`, or `CQA_ADAPTER=OWNER/NAME` on a Space).

- Base: `{base['file']}` (sha256 `{base['sha256'][:16]}…`); the adapter refuses any other base.
- Adapter: epoch {epoch} of {manifest['config']['epochs']}, LoRA r={manifest['config']['lora_r']} on
  {', '.join(manifest['config']['target_modules'])}; sha256 `{manifest['adapter']['sha256'][:16]}…`.
- Data: `{manifest['data']['path']}` (sha256 `{manifest['data']['sha256'][:16]}…`).

## Result: does the tuned model judge better?

Δ(ΔI): for each pair of an excellent and a degraded passage, ΔI = I(excellent) − I(degraded) in
bits/token (I = H(X) − H(X|Y), the brief's pointwise mutual information with the passage), tuned minus
base; one-sided Wilcoxon signed-rank test, Cohen's d_z. Template `{report.get('template', 'chat')}`.

| group | pairs | Δ(ΔI) bits/token | p | d_z |
|---|---:|---:|---:|---:|
{chr(10).join(rows)}

Measured with `{report.get('command', 'python -m eval pairs')}` ({report.get('created', '')}). Caveats: small pair
sets, written by the corpus's authors; one training seed. The tuned model is a better *judge*; as a
*writer* its passages are not yet measurably better explained than the base's.

Files: `adapter.gguf`, `manifest.json` (how it was made), `eval/report.json`, `eval/report.md`.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}").content


def dataset_card(coverage: dict) -> str:
    """README.md of the corpus repo: YAML metadata (licence, splits), format, counts from the audit."""
    from huggingface_hub import DatasetCard, DatasetCardData

    n = coverage["annotations"]
    data = DatasetCardData(license="cc-by-4.0", language=["en"], task_categories=["text-generation"],
                           pretty_name="CQA expert chain-of-thought annotations", size_categories=["n<1K"],
                           tags=["creative-writing", "chain-of-thought", "calibrated-surprise"],
                           configs=[{"config_name": "default", "data_files": [
                               {"split": "train", "path": SPLITS["train"]},
                               {"split": "test", "path": SPLITS["heldout"]}]}])
    src = " · ".join(f"{k} {v['share']:.0%}" for k, v in coverage["by_source"].items())
    dim = " · ".join(f"{k} {v['share']:.0%}" for k, v in coverage["by_dimension"].items())
    genres = ", ".join(f"{g} ({c})" for g, c in coverage["genres"].items())
    body = f"""
# CQA expert chain-of-thought annotations

{n} writing tasks worked through by experts: the brief (task, intent, audience, world facts, text so far),
the reasoning steps (each: the choice, the likelier but weaker alternative it rejects, why, the constraint
source it answers to and the dimension), and the passage. Used to train the CQA adapter.

- Splits: train {coverage['splits'].get('train', 0)}, test (held out) {coverage['splits'].get('heldout', 0)}.
- {coverage['steps']} reasoning steps. By source: {src}. By dimension: {dim}.
- Genres: {genres}.
- Warnings of the audit: {'; '.join(coverage['warnings']) or 'none (every source at least 15 % of steps)'}.

Format: one JSON object per line; see `FORMAT.md`. Counts from `python -m finetune audit`.
"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}").content


# ---- staging -----------------------------------------------------------------------------------
def _stage(out: Path, write) -> list[str]:
    """Write a folder in a temp dir beside `out`, then rename it into place; returns its files."""
    with atomic_dir(out) as tmp:
        write(tmp)
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def stage_model(out: Path, shipped: Path = SHIPPED) -> list[str]:
    for need in ("adapter.gguf", "manifest.json", "eval/report.json"):
        if not (shipped / need).is_file():
            raise HubError(f"{shipped / need} is missing: export and evaluate an adapter first "
                           "(python -m finetune export, python -m eval pairs)")
    manifest = json.loads((shipped / "manifest.json").read_text(encoding="utf-8"))
    report = json.loads((shipped / "eval" / "report.json").read_text(encoding="utf-8"))

    def write(d: Path):
        shutil.copy2(shipped / "adapter.gguf", d / "adapter.gguf")
        shutil.copy2(shipped / "manifest.json", d / "manifest.json")
        (d / "eval").mkdir()
        for f in (shipped / "eval").iterdir():
            if f.suffix in (".json", ".md", ".png"):
                shutil.copy2(f, d / "eval" / f.name)
        (d / "README.md").write_text(model_card(manifest, report), encoding="utf-8")
    return _stage(out, write)


def stage_data(out: Path, corpus: Path = CORPUS) -> list[str]:
    from . import annotations, audit

    anns = annotations.load(corpus)      # an invalid corpus is never pushed
    lines = corpus.read_text(encoding="utf-8").splitlines()

    def write(d: Path):
        shutil.copy2(corpus, d / corpus.name)
        by_split = {s: [] for s in SPLITS}
        for line in lines:
            if line.strip():
                by_split.setdefault(json.loads(line)["split"], []).append(line)
        for split, name in SPLITS.items():
            (d / name).write_text("\n".join(by_split[split]) + "\n", encoding="utf-8")
        if FORMAT_DOC.is_file():
            shutil.copy2(FORMAT_DOC, d / "FORMAT.md")
        (d / "README.md").write_text(dataset_card(audit.coverage(anns)), encoding="utf-8")
    return _stage(out, write)


# ---- upload ------------------------------------------------------------------------------------
def upload(folder: Path, repo: str, repo_type: str, private: bool, offline: bool = False) -> str:
    """One commit to the Hub; HubError (one line) when `offline` (HF_HUB_OFFLINE, read by the CLI), without
    a token, or refused."""
    from huggingface_hub import HfApi, get_token

    if offline:
        raise HubError("offline (HF_HUB_OFFLINE is set): nothing was uploaded. Run with --dry-run to write the "
                       f"folder, or go online and push again; the staged folder is {folder}")
    if not get_token():
        raise HubError("no Hugging Face token: run `hf auth login` or set HF_TOKEN, then push again "
                       f"(nothing was uploaded; the staged folder is {folder})")
    api = HfApi()
    try:
        api.create_repo(repo, repo_type=repo_type, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type=repo_type,
                                 commit_message="Upload from the CQA writing assistant")
    except Exception as e:  # noqa: BLE001 - network, auth and Hub errors all end here, in one line
        first = str(e).splitlines()[0] if str(e) else ""
        raise HubError(f"the Hub refused or could not be reached ({type(e).__name__}: {first}); nothing was "
                       "committed") from e
    return str(getattr(info, "commit_url", info))
