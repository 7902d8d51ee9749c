"""The command centre's incident log: raised, acknowledged, escalated, resolved, each with who and when.

On the rehearsal day a test incident is raised at a site (or region-wide), the site's command
centre acknowledges it, escalates it to the central one and in the end resolves it. Each of
those is one event, appended to ``incidents.jsonl`` in the run folder (one JSON object per
line, fsync'd, like :mod:`rehearsal.attest`), so the log is as durable as the results and is
read along the run chain: a rerun sees the incidents of its parent.

The escalation scenario judges the plan's times (``command_centre.escalation``) from this
log when it has an incident for the site (:func:`judge`); without one it asks for an
attestation as before. Times are measured between the events' own stamps, so what counts is
when the command centre acted, not when the scenario runs.

    record(run_dir, Event(action="raise", by="Karin", site="sas-boras", title="…")) -> Event
    read(paths) -> list[Event];  incidents(events) -> list[Incident];  judge(found, times, now)
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rehearsal.errors import UsageError
from rehearsal.plan import Escalation
from rehearsal.run import RUN_FILE, chain, load_run

__all__ = [
    "ACTIONS",
    "FILE",
    "Event",
    "Incident",
    "Judgement",
    "at_site",
    "chain_files",
    "incidents",
    "judge",
    "read",
    "record",
]

FILE = "incidents.jsonl"
PENDING_ITEM = "incidentlogg"
"""The attestation label of a scenario waiting on an open incident (so a rerun repeats it)."""
Action = Literal["raise", "acknowledge", "escalate", "resolve"]
ACTIONS: tuple[Action, ...] = ("raise", "acknowledge", "escalate", "resolve")


@dataclass(frozen=True)
class Event:
    """One thing done to an incident. ``incident`` is its id (made at ``raise`` when left empty)."""

    action: str
    by: str
    incident: str = ""
    site: str | None = None
    title: str = ""
    note: str = ""
    at: str = ""

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.at)


@dataclass(frozen=True)
class Incident:
    """An incident as its events make it: raised, then maybe acknowledged, escalated, resolved."""

    id: str
    site: str | None
    title: str
    raised: Event
    acknowledged: Event | None = None
    escalated: Event | None = None
    resolved: Event | None = None
    notes: tuple[Event, ...] = field(default=())

    @property
    def state(self) -> str:
        for name in ("resolved", "escalated", "acknowledged"):
            if getattr(self, name) is not None:
                return name
        return "raised"

    @property
    def open_actions(self) -> list[str]:
        """What can still be done to it: nothing once it is resolved."""
        if self.resolved is not None:
            return []
        return [a for a in ("acknowledge", "escalate", "resolve") if _done(self, a) is None]

    def minutes_to(self, event: Event | None, now: datetime) -> float:
        """Minutes from the raise to ``event``, or to ``now`` while it has not happened."""
        return ((event.time if event else now) - self.raised.time).total_seconds() / 60


def now() -> str:
    """To the millisecond: an exercise with compressed times (a limit of seconds) is judged fairly."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _done(found: Incident, action: str) -> Event | None:
    return {"acknowledge": found.acknowledged, "escalate": found.escalated, "resolve": found.resolved}[action]


def _check(event: Event, known: dict[str, Incident]) -> None:
    if event.action not in ACTIONS:
        raise UsageError(f"incident: unknown action {event.action!r}; one of {', '.join(ACTIONS)}")
    if not event.by.strip():
        raise UsageError("incident: who acts is needed (a name)")
    if event.action == "raise":
        if not event.title.strip():
            raise UsageError("incident: a raised incident needs a title (what happened)")
        if event.incident in known:
            raise UsageError(f"incident {event.incident}: already raised")
        return
    found = known.get(event.incident)
    if found is None:
        raise UsageError(f"incident {event.incident or '(none)'}: no such incident in this run")
    if found.resolved is not None:
        raise UsageError(f"incident {found.id}: resolved by {found.resolved.by} at {found.resolved.at}")
    earlier = _done(found, event.action)
    if earlier is not None:
        raise UsageError(
            f"incident {found.id}: {event.action} already recorded by {earlier.by} at {earlier.at}"
        )


def record(run_dir: Path, event: Event, inherited: Iterable[Path] = ()) -> Event:
    """Append one event (stamped now, an id made for a raise), after checking it against the log.

    ``inherited`` are the logs of the run's parents: an incident raised there can be
    acknowledged here. The file is locked while it is read and written, so two people acting
    at once in the console never both acknowledge the same incident.
    """
    path = run_dir / FILE
    with path.open("a+", encoding="utf-8") as out:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX)
        try:
            known = {i.id: i for i in incidents(read([*inherited, path]))}
            made = Event(
                **{
                    **asdict(event),
                    "by": event.by.strip(),
                    "incident": event.incident
                    or (f"INC-{secrets.token_hex(3)}" if event.action == "raise" else ""),
                    "at": event.at or now(),
                }
            )
            _check(made, known)
            if made.action != "raise":  # the incident's site and title travel with every event
                made = Event(
                    **{**asdict(made), "site": known[made.incident].site, "title": known[made.incident].title}
                )
            out.write(json.dumps(asdict(made), ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        finally:
            fcntl.flock(out.fileno(), fcntl.LOCK_UN)
    return made


def read(paths: Iterable[Path]) -> list[Event]:
    """Every event in these logs, in order; a torn last line (an interrupted write) is skipped."""
    events: list[Event] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            try:
                data = json.loads(line)
                event = Event(
                    action=str(data["action"]),
                    by=str(data["by"]),
                    incident=str(data["incident"]),
                    site=str(data["site"]) if data.get("site") else None,
                    title=str(data.get("title") or ""),
                    note=str(data.get("note") or ""),
                    at=str(data["at"]),
                )
                event.time  # noqa: B018 (a stamp that is no time makes no event)
            except (ValueError, KeyError, TypeError):
                continue
            events.append(event)
    return events


def incidents(events: Iterable[Event]) -> list[Incident]:
    """The incidents the events make, in the order they were raised."""
    found: dict[str, Incident] = {}
    for e in events:
        if e.action == "raise":
            found.setdefault(e.incident, Incident(id=e.incident, site=e.site, title=e.title, raised=e))
            continue
        known = found.get(e.incident)
        if known is None:
            continue
        name = {"acknowledge": "acknowledged", "escalate": "escalated", "resolve": "resolved"}.get(e.action)
        if name and getattr(known, name) is None:
            updates: dict[str, Any] = {name: e, "notes": known.notes + ((e,) if e.note else ())}
            found[e.incident] = replace(known, **updates)
    return list(found.values())


def chain_files(run_dir: Path) -> list[Path]:
    """The logs of a run folder and of its parents, oldest first (the folder alone if it is no run)."""
    if not (run_dir / RUN_FILE).is_file():
        return [run_dir / FILE]
    try:
        return [r.dir / FILE for r in chain(load_run(run_dir.parent.parent, str(run_dir)))]
    except UsageError:
        return [run_dir / FILE]


def at_site(run_dir: Path, site: str | None) -> list[Incident]:
    """The incidents of a site (``None``: region-wide ones) logged in this run and its parents."""
    return [i for i in incidents(read(chain_files(run_dir))) if i.site == site]


# --- the plan's times, judged from the log --------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    """``pass``, ``fail`` (late: the message names the incidents and minutes) or ``pending``."""

    status: Literal["pass", "fail", "pending"]
    message: str


def minutes(value: float) -> str:
    """Minutes as a person reads them, with a decimal comma: 12, 4,5, 0,07."""
    shown = f"{value:.0f}" if value >= 10 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"
    return shown.replace(".", ",")


def judge(found: Sequence[Incident], times: Escalation, at: datetime | None = None) -> Judgement:
    """Were the incidents acknowledged and escalated within the plan's minutes?

    Late (done after its limit, or not done and the limit already passed) fails, naming the
    incident and the minutes; not done but still within its limit is pending (the command
    centre may yet act); every incident done in time passes.
    """
    at = at or datetime.now(UTC)
    late: list[str] = []
    waiting: list[str] = []
    for incident in found:
        for event, limit, done_word, open_word in (
            (incident.acknowledged, times.acknowledge_within_min, "kvitterades", "kvittering"),
            (incident.escalated, times.escalate_within_min, "eskalerades", "eskalering"),
        ):
            took = incident.minutes_to(event, at)
            name = f"{incident.id} ({incident.title})"
            required = f"planen kräver inom {minutes(limit)} min"
            if event is not None and took > limit:
                late.append(f"{name} {done_word} efter {minutes(took)} min, {required}")
            elif event is None and took > limit:
                late.append(f"{name}: ingen {open_word} efter {minutes(took)} min, {required}")
            elif event is None:
                waiting.append(f"{name} väntar på {open_word} (inom {minutes(limit)} min)")
    if late:
        return Judgement("fail", "; ".join(late))
    if waiting:
        return Judgement("pending", "; ".join(waiting))
    return Judgement("pass", f"{len(found)} incident(er) kvitterade och eskalerade inom planens tider")
