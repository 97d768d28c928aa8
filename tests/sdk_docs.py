"""What the pinned provider SDKs' own docstrings say a change of an input does, read
independently of planner/changemodel (the day-2 and data-safety tests judge the plans by it)."""

from __future__ import annotations

import inspect
import re
from functools import cache


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@cache
def sdk_verb(args_cls: type, engine_name: str) -> str | None:
    """The verb an Args property's docstring gives for a change, or None if it is silent."""
    prop = getattr(args_cls, _snake(engine_name), None)
    doc = " ".join((inspect.getdoc(prop) or "").split()) if prop is not None else ""
    for phrase, verb in (
        ("creates a new", "replace"),
        ("rebuilds the existing", "rebuild"),
        ("resizes the existing", "resize"),
        ("updates the existing", "update"),
    ):
        if f"Changing this {phrase}" in doc:
            return verb
    return None
