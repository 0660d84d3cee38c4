"""Sampler settings: typed, validated on construction, every problem reported at once."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from .errors import BadSampler


SamplerError = BadSampler   # sampler values out of range; the message lists them all


MAX_TOKENS_LIMIT = 2048  # a draft longer than the default context is never what a writer meant


@dataclass(frozen=True)
class Sampler:
    temperature: float = 0.8    # 0 = greedy; higher = more random (0-2)
    top_p: float = 0.95         # nucleus: keep the smallest set with this much probability (0-1]
    top_k: int = 40             # keep the k likeliest tokens; 0 = off
    min_p: float = 0.05         # drop tokens below min_p x the top probability [0-1)
    repeat_penalty: float = 1.1 # >1 discourages repeating the last 64 tokens (0.5-2)
    seed: int = 0               # same seed + same settings + same prompt = same draft
    max_tokens: int = 200       # new tokens at most
    stop: tuple[str, ...] = field(default_factory=tuple)  # stop before any of these strings

    def __post_init__(self):
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,) if self.stop else ())
        else:
            object.__setattr__(self, "stop", tuple(self.stop or ()))
        self.validate()

    def validate(self) -> None:
        problems = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "stop":
                if not all(isinstance(s, str) for s in v):
                    problems.append("stop: must be a list of strings")
                continue
            want = int if f.type in ("int", int) else float
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):  # nan, inf
                problems.append(f"{f.name}: must be a number, got {v!r}")
                continue
            if want is int and int(v) != v:
                problems.append(f"{f.name}: must be a whole number, got {v!r}")
        if problems:
            raise SamplerError("; ".join(problems))
        checks = [
            (0.0 <= self.temperature <= 2.0, f"temperature {self.temperature} must be between 0 and 2"),
            (0.0 < self.top_p <= 1.0, f"top_p {self.top_p} must be in (0, 1]"),
            (0 <= self.top_k <= 1000, f"top_k {self.top_k} must be between 0 and 1000"),
            (0.0 <= self.min_p < 1.0, f"min_p {self.min_p} must be in [0, 1)"),
            (0.5 <= self.repeat_penalty <= 2.0, f"repeat_penalty {self.repeat_penalty} must be between 0.5 and 2"),
            (0 <= self.seed < 2**31, f"seed {self.seed} must be between 0 and 2^31-1"),
            (1 <= self.max_tokens <= MAX_TOKENS_LIMIT, f"max_tokens {self.max_tokens} must be between 1 and {MAX_TOKENS_LIMIT}"),
            (len(self.stop) <= 8, "at most 8 stop strings"),
        ]
        problems = [msg for ok, msg in checks if not ok]
        if problems:
            raise SamplerError("; ".join(problems))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Sampler":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise SamplerError(f"unknown sampler setting(s) {unknown}; known: {sorted(names)}")
        return cls(**data)
