"""What every handler of the page shares: errors become messages, form values become a Brief and a Sampler,
and Stop finds the draft of the session that pressed it.

    >>> values = dict(zip(SAMPLER_FIELDS, (0.8, 0.95, 40.0, 0.05, 1.1, 0, 24, "Passage:|\\\\n")))
    >>> s, alpha, strength = settings(values, 0.5, 1)
    >>> s.top_k, s.stop, alpha, strength
    (40, ('Passage:', '\\n'), 0.5, 1.0)

Only a `UserError` (assistant/errors.py) reaches a user as its own message. Anything else is a bug: it is
logged with its traceback and the user reads INTERNAL, never the exception's text.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import threading

import gradio as gr

from assistant import guidance, writer
from assistant.brief import Brief, BriefError
from assistant.errors import UserError
from assistant.pool import TUNED
from assistant.sampler import Sampler, SamplerError

log = logging.getLogger(__name__)
INTERNAL = "Internal error (logged): please try again; if it persists, report it."
MAX_STRENGTH = 2.0     # CQA strength: the LoRA scale, 0 (the base) to 2
BRIEF_FIELDS = ("task", "intent", "audience", "world", "text_so_far")
SAMPLER_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed", "max_tokens", "stop")
INT_FIELDS = ("top_k", "seed", "max_tokens")


@contextlib.contextmanager
def user_error_messages():
    """A UserError becomes gr.Error with its text; any other error is logged and shown as INTERNAL.
    Either way the server keeps serving, and no traceback reaches the user."""
    try:
        yield
    except gr.Error:
        raise
    except UserError as e:
        raise gr.Error(str(e)) from None
    except Exception:  # noqa: BLE001 - last line of defence for one request
        log.exception("request failed")
        raise gr.Error(INTERNAL) from None


def user_errors(fn):
    """Decorate a handler, streaming or not, with user_error_messages()."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streaming(*a, **k):
            with user_error_messages():
                yield from fn(*a, **k)
        return streaming

    @functools.wraps(fn)
    def plain(*a, **k):
        with user_error_messages():
            return fn(*a, **k)
    return plain


class Cancels:
    """Stop's bookkeeping: one Event per session while it writes (not one forever); Stop sets its session's."""

    def __init__(self):
        self._events: dict[str, threading.Event] = {}

    @contextlib.contextmanager
    def running(self, request: gr.Request | None):
        """The Event a draft of this session checks; forgotten when the draft ends (unless a newer one took
        its place)."""
        key = _session(request)
        self._events[key] = cancel = threading.Event()
        try:
            yield cancel
        finally:
            if self._events.get(key) is cancel:
                del self._events[key]

    def stop(self, request: gr.Request = None):
        """The Stop buttons' handler: Gradio fills in the request, which names the session."""
        ev = self._events.get(_session(request))
        if ev:
            ev.set()


def _session(request) -> str:
    return request.session_hash if request else "local"


def sampler(values: dict) -> Sampler:
    """UI/API values -> Sampler. Sliders send whole numbers as floats (40.0): those become ints;
    anything else goes to Sampler as it came, so it reports every bad value in one message."""
    v = dict(values)
    stop = v.pop("stop", "") or ""
    if isinstance(stop, str):
        stops = tuple(unescape(s) for s in stop.split("|") if s)
    elif isinstance(stop, (list, tuple)):
        stops = tuple(stop)
    else:
        raise SamplerError(f"stop: must be text (strings separated by |), got {type(stop).__name__}")
    for k in INT_FIELDS:
        if isinstance(v.get(k), float) and v[k].is_integer():
            v[k] = int(v[k])
    return Sampler(**v, stop=stops)


def settings(values: dict, alpha, strength) -> tuple[Sampler, float, float]:
    """Sampler values, brief guidance and CQA strength, checked together: every problem in one message."""
    problems = guidance.check(alpha)
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        problems.append(f"CQA strength: must be a number, got {strength!r}")
    elif not 0 <= strength <= MAX_STRENGTH:
        problems.append(f"CQA strength {strength} must be between 0 and {MAX_STRENGTH:g}")
    try:
        s = sampler(values)
    except SamplerError as e:
        problems = [str(e)] + problems
        s = None
    if problems:
        raise SamplerError("; ".join(problems))
    return s, float(alpha), float(strength)


def unescape(stop: str) -> str:
    """Let a stop string be typed as \\n or \\t; other characters (é, a lone backslash) stay as typed."""
    return stop.replace("\\n", "\n").replace("\\t", "\t")


def check_text(fields: dict) -> None:
    """A pasted lone surrogate cannot become UTF-8: say which field, before the model sees it."""
    problems = []
    for name, value in fields.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:
                problems.append(f"{name} has an invalid character (a lone surrogate) at position {e.start}")
    if problems:
        raise BriefError("; ".join(problems) + ": paste the text again as plain UTF-8")


def brief(*values) -> Brief:
    """The five brief fields, in BRIEF_FIELDS order, checked for unencodable text."""
    check_text(dict(zip(BRIEF_FIELDS, values)))
    return Brief(*values)


def n_drafts(value) -> int:
    """Best of N's N: a whole number from 1 to writer.MAX_DRAFTS (a slider's 3.0 is 3)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= writer.MAX_DRAFTS:
        raise SamplerError(f"drafts: {value!r} must be a whole number from 1 to {writer.MAX_DRAFTS}")
    return value


def score_json(update, variant: str, strength: float) -> dict | None:
    """An update's score as the page and the API show it, with the guidance and strength it was written with."""
    if not update.result:
        return None
    r = update.result.to_json()
    r["guidance"] = update.guidance
    r["cqa_strength"] = strength if variant in TUNED else None
    return r


def notes_md(notes: str) -> str:
    """A tuned model reasons before it writes: its notes, folded away under the draft's notice."""
    if not notes:
        return ""
    return f"\n\n<details><summary>The model's notes before the passage</summary>\n\n{notes}\n\n</details>"
