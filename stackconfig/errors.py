"""Configuration errors that name the key, the value and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_MISSING = object()


@dataclass(frozen=True)
class Problem:
    key: str
    message: str
    value: Any = _MISSING

    def __str__(self) -> str:
        if self.value is _MISSING:
            return f"{self.key}: {self.message}"
        return f"{self.key} = {self.value!r}: {self.message}"


class ConfigError(ValueError):
    """Raised before any resource exists when the stack configuration is unusable."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        lines = [f"invalid stack configuration ({len(problems)} {noun}):"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))
