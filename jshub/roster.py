"""A workshop's roster: a CSV (`username[,admin]`, an optional header) or a text file with one
username a line. Blank lines and `#` comments are skipped. A bad line is reported with its line
number and the others are kept."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

# JupyterHub lowercases names at login: a roster holds them as the hub will.
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_TRUE = {"1", "true", "yes", "y", "admin"}
_FALSE = {"", "0", "false", "no", "n", "user"}


@dataclass(frozen=True)
class Entry:
    line: int
    name: str
    admin: bool = False


@dataclass(frozen=True)
class BadLine:
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.text!r}: {self.reason}"


def parse(text: str) -> tuple[list[Entry], list[BadLine]]:
    entries: list[Entry] = []
    bad: list[BadLine] = []
    seen: dict[str, int] = {}
    first = True
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in next(csv.reader([line]))]
        if first and fields[0].lower() in ("username", "name", "user"):
            first = False
            continue  # a header
        first = False
        name = fields[0]
        if len(fields) > 2:
            bad.append(BadLine(number, line, "more than two columns; write username[,admin]"))
            continue
        flag = fields[1].lower() if len(fields) == 2 else ""
        if flag not in _TRUE | _FALSE:
            bad.append(
                BadLine(number, line, f"admin column {fields[1]!r}: write true or false (or leave it out)")
            )
            continue
        if name != name.lower() and USERNAME.match(name.lower()):
            bad.append(BadLine(number, line, f"JupyterHub logs this user in as {name.lower()!r}: write that"))
            continue
        if not USERNAME.match(name):
            bad.append(
                BadLine(
                    number,
                    line,
                    "not a username: 1-64 lowercase letters, digits, '.', '_', '@' or '-', "
                    "starting with a letter or digit",
                )
            )
            continue
        if name in seen:
            bad.append(BadLine(number, line, f"{name} is already on line {seen[name]}"))
            continue
        seen[name] = number
        entries.append(Entry(number, name, flag in _TRUE))
    return entries, bad
