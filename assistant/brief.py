"""The brief, and the one place where it becomes prompts.

A brief (task, intent, audience, world, text_so_far) is the constraint set Y.
`render` gives the conditional prompt (Y present) and the unconditional prompt:
the same template with every constraint removed, so the two passes differ only
in Y (docs/design.md §2).

    >>> b = Brief(task="Write the opening line.", audience="children aged 5")
    >>> user_message(b)
    'Task: Write the opening line.\\nAudience: children aged 5'
    >>> user_message(None)
    'Write a passage.'
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Callable

from . import chat
from .errors import BadBrief
from .chat import ChatFormatter, Messages, Prompt

SYSTEM = "You are a creative writing assistant."
NEUTRAL_TASK = "Write a passage."          # the unconditional prompt's only instruction
CONTEXT_TASK = "Write the passage."        # follows a prose context (eval pairs)
FIELD_LABELS = {"task": "Task", "intent": "Intent", "audience": "Audience", "world": "World",
                "text_so_far": "Text so far"}
NOTES_HEADER = "Notes:"      # a CQA-tuned model reasons first, under this line...
PASSAGE_HEADER = "Passage:"  # ...then writes the passage under this one (finetune/render.py)
TEMPLATES = ("chat", "plain")              # chat: the model's own chat template from its GGUF
# "Suggest" on a weak sentence (assistant/revise.py): the brief, the text around the sentence, the request.
REWRITE_BEFORE = "Text before the sentence:"
REWRITE_SENTENCE = "Sentence to rewrite:"
REWRITE_AFTER = "Text after the sentence (the new sentence must lead into it):"
REWRITE_NONE = "(none)"
REWRITE_TASK = ("Rewrite the sentence so that it serves the brief better and fits between the text before and "
                "after it. Write only the new sentence.")


BriefError = BadBrief   # a brief that cannot be used; the message says which field and why


@dataclass(frozen=True)
class Brief:
    task: str = ""         # what to write, e.g. "Write the opening paragraph"
    intent: str = ""       # what the author wants the reader to feel or realise
    audience: str = ""     # who reads it
    world: str = ""        # facts of the story world the text must honour
    text_so_far: str = ""  # the piece so far; the draft continues it

    def __post_init__(self):
        problems = [f"{f.name}: must be text, got {type(getattr(self, f.name)).__name__}"
                    for f in fields(self) if not isinstance(getattr(self, f.name), str)]
        if problems:
            raise BriefError("; ".join(problems))

    @classmethod
    def from_dict(cls, data: dict) -> "Brief":
        """Build from a JSON object; unknown keys are an error, missing keys are empty."""
        if not isinstance(data, dict):
            raise BriefError("a brief must be a JSON object with task, intent, audience, world, text_so_far")
        unknown = sorted(set(data) - set(FIELD_LABELS))
        if unknown:
            raise BriefError(f"unknown brief field(s) {unknown}; known: {list(FIELD_LABELS)}")
        return cls(**{k: ("" if v is None else v) for k, v in data.items()})

    def to_dict(self) -> dict:
        return asdict(self)

    def is_empty(self) -> bool:
        return not any(v.strip() for v in asdict(self).values())

    def text(self) -> str:
        """All of the brief's words, for copied-span detection."""
        return "\n".join(v for v in asdict(self).values() if v)

    def replace(self, **changes) -> "Brief":
        return Brief(**{**asdict(self), **changes})


def user_message(brief: Brief | None) -> str:
    """The user turn: labelled brief fields (empty ones left out), or the neutral task."""
    if brief is None or brief.is_empty():
        return NEUTRAL_TASK
    parts = []
    for name, label in FIELD_LABELS.items():
        value = getattr(brief, name).strip()
        if value:
            parts.append(f"{label}:\n{value}" if name == "text_so_far" else f"{label}: {value}")
    return "\n".join(parts)


def messages(user: str) -> Messages:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def plain_format(msgs: Messages, add_generation_prompt: bool = True) -> str:
    """The plain-text template: no special tokens, the passage follows 'Passage:'."""
    body = "\n\n".join(m["content"] for m in msgs)
    return f"{body}\n\nPassage:\n" if add_generation_prompt else body


@dataclass(frozen=True)
class Prompts:
    conditional: Prompt    # template with the brief (Y)
    unconditional: Prompt  # same template, constraints removed
    brief_text: str        # the words of Y, for copied spans


def prompt(user: str, fmt: ChatFormatter | None = None) -> Prompt:
    """System + user turn in the template (`fmt=None`: plain); the user's words stay plain text."""
    return chat.render(fmt or plain_format, messages(user))


def render(brief: Brief, fmt: ChatFormatter | None = None) -> Prompts:
    """Brief -> (conditional, unconditional) prompts; `fmt=None` selects the plain template."""
    return Prompts(prompt(user_message(brief), fmt), prompt(NEUTRAL_TASK, fmt), brief.text())


def render_context(context: str, fmt: ChatFormatter | None = None) -> Prompts:
    """A brief written as prose (eval pairs) -> prompts, with the same neutral counterpart."""
    user = f"{context.strip()}\n\n{CONTEXT_TASK}"
    return Prompts(prompt(user, fmt), prompt(NEUTRAL_TASK, fmt), context)


def rewrite_message(brief: Brief, before: str, sentence: str, after: str) -> str:
    """The user turn asking for a rewrite of one sentence, in its context.

    >>> print(rewrite_message(Brief(task="A sea story"), "The boat left.", "It was sunny.", ""))
    Task: A sea story
    <BLANKLINE>
    Text before the sentence:
    The boat left.
    <BLANKLINE>
    Sentence to rewrite:
    It was sunny.
    <BLANKLINE>
    Text after the sentence (the new sentence must lead into it):
    (none)
    <BLANKLINE>
    Rewrite the sentence so that it serves the brief better and fits between the text before and after it. Write only the new sentence.
    """
    parts = [user_message(brief)] if not brief.is_empty() else []
    parts += [f"{REWRITE_BEFORE}\n{before.strip() or REWRITE_NONE}", f"{REWRITE_SENTENCE}\n{sentence.strip()}",
              f"{REWRITE_AFTER}\n{after.strip() or REWRITE_NONE}", REWRITE_TASK]
    return "\n\n".join(parts)


def fit(brief: Brief, budget_tokens: int, count: Callable[[Brief], int]) -> tuple[Brief, str]:
    """Drop the oldest words of text_so_far until `count(brief) <= budget_tokens`.

    Returns the brief that fits and a notice ("" when nothing was dropped). Raises
    BriefError when even an empty text_so_far does not fit.
    """
    if count(brief) <= budget_tokens:
        return brief, ""
    words = brief.text_so_far.split()
    lo, hi = 0, len(words)  # binary search on how many leading words to drop
    while lo < hi:
        mid = (lo + hi) // 2
        if count(brief.replace(text_so_far=" ".join(words[mid:]))) <= budget_tokens:
            hi = mid
        else:
            lo = mid + 1
    if lo == len(words) and count(brief.replace(text_so_far="")) > budget_tokens:
        raise BriefError(f"the brief alone is longer than the {budget_tokens}-token context budget: "
                         "shorten the task, intent, audience or world")
    kept = brief.replace(text_so_far=" ".join(words[lo:]))
    return kept, (f"The brief and text so far were longer than the model's context: the oldest "
                  f"{lo} of {len(words)} words of 'text so far' were left out.")


def split_notes(draft: str) -> tuple[str, str]:
    """A tuned model's draft -> (its notes, the passage). Drafts without notes pass through.

    >>> split_notes("Notes:\\n- [craft/lexis] a over b: why\\n\\nPassage:\\nThe sea.")
    ('Notes:\\n- [craft/lexis] a over b: why', 'The sea.')
    >>> split_notes("The sea.")
    ('', 'The sea.')
    >>> split_notes("She read the label: Passage:\\nNorth.")   # base drafts are never split
    ('', 'She read the label: Passage:\\nNorth.')
    """
    marker = f"{PASSAGE_HEADER}\n"
    if not draft.lstrip().startswith(NOTES_HEADER):  # only a tuned model's drafts open with notes
        return "", draft
    if marker in draft:
        head, _, tail = draft.partition(marker)
        return head.strip(), tail.lstrip()
    return draft.strip(), ""  # the notes never reached the passage (max tokens, Stop)
