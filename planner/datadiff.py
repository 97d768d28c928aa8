"""What changed inside an input that carries data, leaf by leaf: the JSON documents in it, such
as the hub's settings file inside hub-config's script (a heredoc) or a docker config's base64
content, a Helm release's values. `make diff` prints these under the input's own line, so that a changed admin reads as
`Authenticator.admin_users[1]: (none) => "bob"` rather than as two scripts cut at 60 characters."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

# Past this many changed leaves, the rest is counted, not listed.
MAX_LEAVES = 40


class _Absent:
    def __repr__(self) -> str:
        return "(none)"


ABSENT: Any = _Absent()


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def json_documents(value: Any) -> list[Any]:
    """The JSON objects `value` holds: itself (an object, JSON text or its base64), or each one written
    from a line `{` to a line `}` (pretty-printed, as in a heredoc of a script)."""
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, str):
        return []
    whole = _parse(value)
    if isinstance(whole, dict):
        return [whole]
    if "\n" not in value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return []
        whole = _parse(decoded)
        return [whole] if isinstance(whole, dict) else json_documents(decoded) if "\n" in decoded else []
    documents, start = [], None
    lines = value.split("\n")
    for number, line in enumerate(lines):
        if line == "{":
            start = number
        elif line == "}" and start is not None:
            document = _parse("\n".join(lines[start : number + 1]))
            if isinstance(document, dict):
                documents.append(document)
            start = None
    return documents


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        leaves: dict[str, Any] = {}
        for key, item in value.items():
            leaves |= flatten(item, f"{path}.{key}" if path else str(key))
        return leaves
    # A list of plain values (admins, images, scopes) reads best whole.
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        leaves = {}
        for index, item in enumerate(value):
            leaves |= flatten(item, f"{path}[{index}]")
        return leaves
    return {path: value}


def data_changes(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """(path, old leaf, new leaf) for every leaf that differs between the JSON documents of two
    values of an input, paired in order; nothing when they hold none or a different number."""
    before, after = json_documents(old), json_documents(new)
    if not before or len(before) != len(after):
        return []
    changes = []
    for a, b in zip(before, after, strict=True):
        flat_a, flat_b = flatten(a), flatten(b)
        for path in sorted(flat_a.keys() | flat_b.keys()):
            x, y = flat_a.get(path, ABSENT), flat_b.get(path, ABSENT)
            if x != y or type(x) is not type(y):
                changes.append((path, x, y))
    return changes
