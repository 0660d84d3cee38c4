"""One root for every error a user can fix: only these are shown to a user as a message.

    >>> issubclass(BadBrief, UserError) and issubclass(UnknownModel, UserError)
    True
    >>> str(BadSampler("temperature -1 must be >= 0"))
    'temperature -1 must be >= 0'

The page turns a `UserError` into a message (gr.Error) and the CLIs into one line and exit code 1.
Anything else (a shape check in surprise.py, a bug) is an internal error: logged with its traceback,
and the user sees a short "internal error, logged" line. Each module raises the named subclass that
says what was wrong; modules keep their historical names as aliases (e.g. `brief.BriefError`).
"""
from __future__ import annotations


class UserError(Exception):
    """Something the user can change: the message says what and how."""


class BadBrief(UserError, ValueError):
    """A brief that is empty, too long or not text."""


class BadSampler(UserError, ValueError):
    """Sampler, guidance or strength values out of range or of the wrong type."""


class UnknownModel(UserError, LookupError):
    """A model or variant name that the catalog or the pool does not know."""


class ModelUnavailable(UserError):
    """A known model whose file is missing or cannot be fetched (offline, not installed)."""


class BadModelFile(UserError):
    """A model file that exists but cannot be loaded (corrupt, truncated, not GGUF)."""


class BadAdapter(UserError):
    """A LoRA adapter that is missing, corrupt or made for another base."""


class BadText(UserError, ValueError):
    """Text to score or write from that cannot be used (empty, too long, not UTF-8)."""


class BadInput(UserError, ValueError):
    """Any other bad value from a user: a file, a form field, a flag."""


class EngineFailure(UserError):
    """The engine could not do what was asked with these inputs (e.g. a context too small)."""
