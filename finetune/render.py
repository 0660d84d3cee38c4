"""Annotation -> one chat example in the base model's own chat template, plus its loss mask.

    python -m finetune preview finetune/data/cqa.jsonl --n 2

The user turn is exactly what the app sends (`assistant.brief.prompt(user_message(brief), fmt)`),
rendered by the same formatter the engine uses (`assistant.chat`) from the chat template stored in
the base GGUF, with the brief's words kept as plain text (never control tokens). The assistant
turn is the expert's reasoning, compact, then the passage (or the passage alone, `target="passage"`):

    >>> s = Step("lexis", "audience", "a boiling pan", "torrential rain", "Children know pans.")
    >>> notes([s])
    'Notes:\\n- [audience/lexis] «a boiling pan» over «torrential rain»: Children know pans.'

Loss is taken on the assistant tokens only (the reasoning, the passage and the end-of-turn token).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from assistant import brief as briefs
from assistant import chat
from assistant.chat import Prompt

from .annotations import Annotation, Step
from .errors import ExampleTooLong, UnsupportedBase

NOTES_HEADER = briefs.NOTES_HEADER       # "Notes:", defined beside the app's split_notes()
PASSAGE_HEADER = briefs.PASSAGE_HEADER   # "Passage:", where the app splits a tuned model's draft
IGNORE = -100                    # label of tokens without loss (torch's cross-entropy ignore_index)
GGUF_CHAT_TEMPLATE = "tokenizer.chat_template"
TARGETS = ("notes+passage", "passage")   # what the tuned model learns to write after the prompt


def notes(steps) -> str:
    lines = [f"- [{s.source}/{s.dimension}] «{s.choice.strip()}» over «{s.alternative.strip()}»: {s.why.strip()}"
             for s in steps]
    return "\n".join([NOTES_HEADER, *lines])


def assistant_text(ann: Annotation, target: str = TARGETS[0]) -> str:
    """What the tuned model learns to write: the notes, a blank line, then the passage under its header;
    with target "passage", the header and the passage alone (what the app's "Reason first: off" sends)."""
    if target == "passage":
        return f"{PASSAGE_HEADER}\n{ann.passage.strip()}"
    return f"{notes(ann.reasoning)}\n\n{PASSAGE_HEADER}\n{ann.passage.strip()}"


def user_messages(ann: Annotation) -> list[dict]:
    """The system + user turns, exactly as the app builds them."""
    return briefs.messages(briefs.user_message(ann.brief))


def chat_formatter(gguf_path: str | Path):
    """messages -> prompt (with the assistant header) using the chat template inside the GGUF: the very
    formatter `assistant.engine.Engine.chat_formatter` is (`assistant.chat.formatter`)."""
    return chat.formatter(*_template(str(gguf_path)))


@functools.lru_cache(maxsize=4)
def _template(gguf_path: str) -> tuple[str, str, str]:
    """(chat template, BOS text, EOS text) from GGUF metadata; parsing the vocabulary takes ~2 s, so once."""
    from gguf import GGUFReader

    reader = GGUFReader(gguf_path, "r")
    field = reader.get_field(GGUF_CHAT_TEMPLATE)
    if field is None:
        raise UnsupportedBase(f"{gguf_path} has no chat template ({GGUF_CHAT_TEMPLATE}); fine-tuning renders "
                         "examples in the model's own chat template: use an instruct/chat model")
    tokens = reader.get_field("tokenizer.ggml.tokens")
    special = []
    for key in ("bos", "eos"):
        tid = reader.get_field(f"tokenizer.ggml.{key}_token_id")
        special.append(tokens.contents(int(tid.contents())) if tid is not None and tokens is not None else "")
    return field.contents(), special[0], special[1]


@dataclass(frozen=True)
class Rendered:
    id: str
    split: str
    prompt: Prompt    # system + user turns + assistant header: what the app sends (markup apart from text)
    completion: str   # the assistant's content (notes + passage), without the end-of-turn token


def render(ann: Annotation, fmt, target: str = TARGETS[0]) -> Rendered:
    """Split the full conversation at the end of the prompt the app would send."""
    if target not in TARGETS:   # internal: TrainConfig has already checked a user's target
        raise ValueError(f"unknown target {target!r}: one of {TARGETS}")
    prompt = chat.render(fmt, user_messages(ann), True)
    body = assistant_text(ann, target)
    full = fmt(user_messages(ann) + [{"role": "assistant", "content": body}], False)
    if not full.startswith(prompt.text + body):
        raise UnsupportedBase("the chat template does not render the assistant turn after the prompt the app "
                         "sends; this base model's template is not supported for fine-tuning")
    return Rendered(ann.id, ann.split, prompt, body)


def tokenize_prompt(prompt: Prompt, tokenizer) -> list[int]:
    """A Prompt -> ids with a transformers tokenizer, as the engine tokenizes it: control tokens only in the
    template's markup, the messages' text always plain (`split_special_tokens`)."""
    ids = []
    for text, markup in prompt.parts:
        ids += tokenizer(text, add_special_tokens=False, split_special_tokens=not markup)["input_ids"]
    return ids


@dataclass(frozen=True)
class Example:
    id: str
    split: str
    input_ids: list[int]
    labels: list[int]       # IGNORE on the prompt, token ids on the assistant turn
    truncated: bool = False

    @property
    def n_target(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


def tokenize(r: Rendered, tokenizer, end_id: int, max_len: int | None = None, truncate: bool = False) -> Example:
    """Prompt and completion tokenized apart (as the engine scores them), end-of-turn appended.

    Raises ExampleTooLong for an example longer than `max_len` unless `truncate` (then the tail goes).
    """
    p = tokenize_prompt(r.prompt, tokenizer)
    c = tokenizer(r.completion, add_special_tokens=False, split_special_tokens=True)["input_ids"] + [end_id]
    ids, labels = p + c, [IGNORE] * len(p) + c
    cut = False
    if max_len is not None and len(ids) > max_len:
        if not truncate or len(p) >= max_len:
            raise ExampleTooLong(f"{r.id}: {len(ids)} tokens (prompt {len(p)}), more than max_seq_len={max_len}: "
                             f"raise max_seq_len to at least {len(ids)} or set truncate = true")
        ids, labels, cut = ids[:max_len], labels[:max_len], True
    return Example(r.id, r.split, ids, labels, cut)


def end_of_turn_id(tokenizer, fmt) -> int:
    """The token that closes an assistant turn in this template (e.g. <|im_end|>)."""
    probe = fmt([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], False)
    tail = probe[probe.rindex("y") + 1:]
    ids = tokenizer(tail, add_special_tokens=False)["input_ids"]
    if not ids:
        return tokenizer.eos_token_id
    return ids[0]
