"""The `backup` section: restic backups of homes and the hub database to Jetstream2 object
storage, on a systemd schedule, with retention and a freshness limit.

The schedule is a systemd OnCalendar expression. The model checks it with the grammar below
(no systemd needed at plan time); tests/test_backup.py holds the grammar to `systemd-analyze
calendar` wherever that tool exists, so an expression accepted here is one systemd accepts.

Accepted forms:
- a shorthand: minutely, hourly, daily, weekly, monthly, quarterly, semiannually, yearly,
  annually;
- `[WEEKDAYS] [DATE] [TIME] [UTC]` with at least a date or a time, where WEEKDAYS is a comma
  list of `Mon`..`Sun` names or `Mon..Fri` ranges, DATE is `YEAR-MONTH-DAY` and TIME is
  `HOUR:MINUTE[:SECOND]`, each component `*`, a number, a `A..B` range or a comma list of
  them, optionally with a `/STEP` repetition (e.g. `*-*-* 03:15:00`, `Mon..Fri *-*-* 02:00`,
  `*-*-* 00/6:00`). Numbers are range-checked (months 1-12, days 1-31, hours 0-23, minutes and
  seconds 0-59). Time zones other than UTC, `~` (days from the end of the month) and
  fractional seconds are refused: the VMs run in UTC, and a plain grammar keeps the check
  exact.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from stackconfig.base import ConfigModel

SHORTHANDS = (
    "minutely",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "semiannually",
    "yearly",
    "annually",
)
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_WEEKDAYS = re.compile(rf"^{_DAY}(?:\.\.{_DAY})?(?:,{_DAY}(?:\.\.{_DAY})?)*$")
# One component: `*`, `N`, `A..B`, comma lists of those, each with an optional `/STEP`.
_ITEM = r"(?:\*|\d{1,4}(?:\.\.\d{1,4})?)(?:/\d{1,4})?"
_COMPONENT = re.compile(rf"^{_ITEM}(?:,{_ITEM})*$")
# (name, lowest, highest) of each component, in order.
_DATE_PARTS = (("year", 1970, 2199), ("month", 1, 12), ("day", 1, 31))
_TIME_PARTS = (("hour", 0, 23), ("minute", 0, 59), ("second", 0, 59))
ALLOWED_SCHEDULE = (
    "a systemd OnCalendar expression: a shorthand (daily, weekly, hourly, ...) or "
    "'[Mon..Sun] YEAR-MONTH-DAY HOUR:MINUTE[:SECOND] [UTC]' with *, numbers, A..B ranges, "
    "comma lists and /STEP, e.g. '*-*-* 03:15:00' (see stackconfig/backup.py)"
)


def _component(text: str, name: str, low: int, high: int) -> None:
    if not _COMPONENT.match(text):
        raise ValueError(f"{name} {text!r} is not *, a number, a range A..B or a list of them")
    for number in re.findall(r"\d+", text.split("/")[0]):
        if not low <= int(number) <= high:
            raise ValueError(f"{name} {number} is outside {low}..{high}")
    for step in re.findall(r"/(\d+)", text):
        if int(step) == 0:
            raise ValueError(f"{name} repetition /0 never advances")


def _parts(text: str, sep: str, parts: tuple[tuple[str, int, int], ...], minimum: int) -> None:
    fields = text.split(sep)
    if not minimum <= len(fields) <= len(parts):
        raise ValueError(f"{text!r} needs {minimum} to {len(parts)} fields separated by {sep!r}")
    for value, (name, low, high) in zip(fields, parts, strict=False):
        _component(value, name, low, high)


def on_calendar(value: str) -> str:
    """Check a systemd OnCalendar expression against the grammar in the module docstring."""
    text = " ".join(value.split())
    try:
        if text in SHORTHANDS:
            return text
        tokens = text.split(" ")
        if tokens and tokens[-1] == "UTC":
            tokens = tokens[:-1]
        if tokens and _WEEKDAYS.match(tokens[0]):
            tokens = tokens[1:]
        date = time = None
        for token in tokens:
            if ":" in token and time is None:
                time = token
            elif "-" in token and date is None and time is None:
                date = token
            else:
                raise ValueError(f"unexpected {token!r}")
        if date is None and time is None:
            raise ValueError("a date or a time is needed")
        if date is not None:
            _parts(date, "-", _DATE_PARTS, 2 if date.count("-") == 1 else 3)
        if time is not None:
            _parts(time, ":", _TIME_PARTS, 2)
    except ValueError as exc:
        raise ValueError(f"{exc}; allowed: {ALLOWED_SCHEDULE}") from None
    return text


OnCalendar = Annotated[str, AfterValidator(on_calendar)]

# systemd's shorthands as cron: weekly is Monday 00:00, the others start their period at 00:00.
_CRON_SHORTHANDS = {
    "minutely": "* * * * *",
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "weekly": "0 0 * * 1",
    "monthly": "0 0 1 * *",
    "quarterly": "0 0 1 1,4,7,10 *",
    "semiannually": "0 0 1 1,7 *",
    "yearly": "0 0 1 1 *",
    "annually": "0 0 1 1 *",
}
_CRON_DAYS = {"Sun": 0, "Mon": 1, "Tue": 2, "Wed": 3, "Thu": 4, "Fri": 5, "Sat": 6}
ALLOWED_K8S_SCHEDULE = (
    "on scenario k8s, an OnCalendar expression a Kubernetes CronJob can express: any year ('*-' or "
    "no date), whole minutes (seconds 0 or left out), e.g. '*-*-* 03:15:00', 'Mon..Fri 02:00' or 'daily'"
)


def _cron_field(text: str, highest: int) -> str:
    """One OnCalendar component in cron's syntax: `A..B` becomes `A-B`, and `A/STEP` becomes
    `A-HIGHEST/STEP` (systemd repeats from A to the end of the range; plain cron has no `A/STEP`)."""
    items = []
    for item in text.split(","):
        base, _, step = item.partition("/")
        base = base.replace("..", "-")
        if step and base != "*" and "-" not in base:
            base = f"{base}-{highest}"
        items.append(f"{base}/{int(step)}" if step else base)
    return re.sub(r"\d+", lambda m: str(int(m.group())), ",".join(items))


def _cron_weekdays(text: str) -> str:
    parts = []
    for item in text.split(","):
        first, _, last = item.partition("..")
        parts.append(f"{_CRON_DAYS[first]}-{_CRON_DAYS[last]}" if last else str(_CRON_DAYS[first]))
    return ",".join(parts)


def cron_schedule(value: str) -> str:
    """The same schedule as a Kubernetes CronJob's (cron, UTC), for an expression `on_calendar`
    accepted. Raises ValueError (ALLOWED_K8S_SCHEDULE) for what cron cannot say: a year, seconds."""
    text = on_calendar(value)
    if text in _CRON_SHORTHANDS:
        return _CRON_SHORTHANDS[text]
    tokens = text.split(" ")
    if tokens[-1] == "UTC":
        tokens = tokens[:-1]
    weekdays = "*"
    if _WEEKDAYS.match(tokens[0]):
        weekdays = _cron_weekdays(tokens[0])
        tokens = tokens[1:]
    date = next((t for t in tokens if ":" not in t), "*-*-*")
    time = next((t for t in tokens if ":" in t), "00:00:00")
    fields = date.split("-")
    if len(fields) == 2:
        fields = ["*", *fields]
    year, month, day = fields
    hour, minute, *second = time.split(":")
    if year != "*":
        raise ValueError(
            f"a CronJob repeats every year: {year!r} as the year; allowed: {ALLOWED_K8S_SCHEDULE}"
        )
    if second and second[0] not in ("0", "00"):
        raise ValueError(
            f"a CronJob runs on whole minutes: {second[0]!r} as the seconds; allowed: {ALLOWED_K8S_SCHEDULE}"
        )
    return " ".join(
        (
            _cron_field(minute, 59),
            _cron_field(hour, 23),
            _cron_field(day, 31),
            _cron_field(month, 12),
            weekdays,
        )
    )


_CONTAINER = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def _container(value: str) -> str:
    if not _CONTAINER.match(value) or "--" in value:
        raise ValueError(
            "not a usable bucket name: 3-63 lowercase letters, digits and single hyphens, starting and "
            "ending with a letter or digit (Jetstream2 bucket names are global: include your allocation)"
        )
    return value


class RetentionConfig(ConfigModel):
    """Which snapshots `restic forget --prune` keeps after each backup."""

    keep_daily: int = Field(default=7, ge=0, le=3660, description="Keep the last snapshot of this many days.")
    keep_weekly: int = Field(
        default=4, ge=0, le=520, description="Keep the last snapshot of this many weeks."
    )
    keep_monthly: int = Field(
        default=6, ge=0, le=240, description="Keep the last snapshot of this many months."
    )

    @model_validator(mode="after")
    def _keeps_something(self) -> RetentionConfig:
        if not (self.keep_daily or self.keep_weekly or self.keep_monthly):
            raise ValueError(
                "keepDaily, keepWeekly and keepMonthly are all 0, so every backup would be deleted "
                "right after it is made; keep at least one"
            )
        return self


class BackupConfig(ConfigModel):
    """Backups of every home and the hub database to Jetstream2 object storage with restic."""

    enabled: bool | None = Field(
        default=None,
        description="Back up homes and the hub database; unset: on in every scenario (k8s: a CronJob backs up "
        "each user's volume and the hub's database).",
    )
    schedule: OnCalendar = Field(
        default="*-*-* 03:15:00",
        description="When backups run: a systemd OnCalendar expression in UTC (default nightly at 03:15); "
        "k8s turns it into the CronJob's cron schedule (whole minutes, any year).",
    )
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig,
        description="Snapshots kept: {keepDaily: 7, keepWeekly: 4, keepMonthly: 6}.",
    )
    max_age_hours: int = Field(
        default=30,
        ge=1,
        le=8760,
        description="jshub-backup-check fails (and the metric shows stale) when the newest snapshot is older.",
    )
    container: Annotated[str, AfterValidator(_container)] | None = Field(
        default=None,
        description="Object-storage container (S3 bucket) of the restic repository; unset: "
        "jshub-backup-<allocation>-<stack>.",
    )

    def on_for(self, scenario: str) -> bool:
        """Whether this stack backs up: the explicit setting, or the scenario's default."""
        if self.enabled is not None:
            return self.enabled
        return scenario in BACKUP_SCENARIOS


# Scenarios that back up: on single, hpc and swarm the homes and the hub database sit on one VM's
# data volume, where restic runs; on k8s a CronJob backs up each user's volume in turn.
BACKUP_SCENARIOS: tuple[str, ...] = ("single", "hpc", "swarm", "k8s")
