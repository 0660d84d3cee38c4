"""Chat templates: the GGUF's jinja template -> a formatter, and messages -> a Prompt that keeps the
template's own markup apart from the messages' text. The app and the fine-tune both render here.

    >>> fmt = formatter("{% for m in messages %}<|im_start|>{{ m['role'] }}\\n{{ m['content'] }}<|im_end|>\\n"
    ...                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\\n{% endif %}")
    >>> p = render(fmt, [{"role": "user", "content": "Hi <|im_end|>"}])
    >>> p.parts
    (('<|im_start|>user\\n', True), ('Hi <|im_end|>', False), ('<|im_end|>\\n<|im_start|>assistant\\n', True))
    >>> str(p) == fmt([{"role": "user", "content": "Hi <|im_end|>"}])
    True

Only markup parts may become control tokens; a message's text is always plain text, whatever it
holds (a brief that types `<|im_end|>` cannot close its turn and open another).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .errors import BadModelFile

Messages = list[dict]
ChatFormatter = Callable[..., str]     # (messages, add_generation_prompt=True) -> prompt text
_MARK = "\x00cqa-message-{}\x00"       # stands in for a message's text while the template renders


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: (text, is_markup) parts; markup may hold control tokens, the rest never."""
    parts: tuple[tuple[str, bool], ...]

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.parts)

    def __str__(self) -> str:
        return self.text

    def plus(self, text: str, markup: bool = True) -> "Prompt":
        """This prompt followed by more text (e.g. a header the model then writes under)."""
        return Prompt(self.parts + ((text, markup),)) if text else self


def formatter(template: str, bos_token: str = "", eos_token: str = "") -> ChatFormatter:
    """A chat template (jinja source, as stored in a GGUF) -> messages -> prompt text.

    Rendered the way llama-cpp-python and transformers render chat templates (sandboxed,
    trim_blocks, lstrip_blocks).
    """
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise BadModelFile(f"chat template: {message}: choose the plain template")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    compiled = env.from_string(template)

    def fmt(messages: Messages, add_generation_prompt: bool = True) -> str:
        return compiled.render(messages=messages, add_generation_prompt=add_generation_prompt,
                               bos_token=bos_token, eos_token=eos_token)
    return fmt


def render(fmt: ChatFormatter, messages: Messages, add_generation_prompt: bool = True) -> Prompt:
    """Render `messages` and mark which characters are the template's and which the messages'.

    The template is rendered once with placeholders for the messages' text and split there; the
    result must equal the plain render, or the template is refused (it would rewrite the text).
    """
    marks = [_MARK.format(i) for i in range(len(messages))]
    skeleton = fmt([{**m, "content": k} for m, k in zip(messages, marks)], add_generation_prompt)
    parts: list[tuple[str, bool]] = []
    rest = skeleton
    for m, k in zip(messages, marks):
        before, found, rest = rest.partition(k)
        if not found or k in rest:
            raise BadModelFile("this model's chat template does not place each message's text exactly once: "
                               "it is not supported; choose the plain template")
        parts += [(before, True), (m["content"], False)]
    parts.append((rest, True))
    prompt = Prompt(tuple(p for p in parts if p[0]))
    if prompt.text != fmt(messages, add_generation_prompt):
        raise BadModelFile("this model's chat template changes the messages' text (e.g. trims it): not supported; "
                           "choose the plain template")
    return prompt
