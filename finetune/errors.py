"""The fine-tune's user errors, each a named subclass of the project's one root, `assistant.errors.UserError`.

    >>> from assistant.errors import UserError
    >>> all(issubclass(e, UserError) for e in (ConfigError, AnnotationError, ExportError, HubError, TrainError))
    True
    >>> str(AnnotationError(["a.jsonl:3: genre: missing", "a.jsonl:4: id: missing"]))
    'a.jsonl:3: genre: missing (and 1 more: run `python -m finetune validate` to see all)'

`python -m finetune` prints any `UserError` as one line and exits 1; anything else is a bug and keeps its
traceback. The modules that raise them keep their historical names (`config.ConfigError`,
`annotations.AnnotationError`, `train.TrainError`, `export.ExportError`, `hub.HubError`).
The ValueError/RuntimeError bases are kept so that older `except ValueError` callers still catch them.
"""
from __future__ import annotations

from assistant.errors import BadInput, UserError


class ConfigError(BadInput):
    """A config that cannot be used (or cannot be honoured on this machine); the message lists every problem."""


class AnnotationError(BadInput):
    """An annotation file that cannot be used; `problems` holds every `file:line: field: message`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        more = f" (and {len(problems) - 1} more: run `python -m finetune validate` to see all)" \
            if len(problems) > 1 else ""
        super().__init__(problems[0] + more if problems else "invalid annotations")


class UnsupportedBase(UserError, ValueError):
    """A base model that fine-tuning cannot render examples for (no chat template, or an unusual one)."""


class ExampleTooLong(BadInput):
    """A rendered example longer than max_seq_len; the message gives the length needed."""


class TrainError(UserError, RuntimeError):
    """A run that cannot start or continue; the message says what to do."""


class ExportError(UserError, RuntimeError):
    """An export that cannot be made; the message says what to do."""


class HubError(UserError, RuntimeError):
    """Pushing cannot go on (offline, no token, the Hub refused); the message says what to do."""
