"""The service manager's review of complaint cases: the list with its filters and charts, a case
with its calls' transcripts (the detector's evidence highlighted), the recording from the
highlighted moment, and the workflow (assign, resolve with a root cause, close).

Every route needs the role of ``case.review`` in the role matrix (:mod:`crm_core.access`):
managers and admins. Transcripts are what callers said, so hostile text: it reaches the page only
through autoescaped templates. Recordings are read from Asterisk's monitor directory by a
linkedid that must look like one, of a call that belongs to a case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiMapping
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_ui import charts
from agent_ui.auth import UI_SESSION, pages, render
from agent_ui.deps import DEPS, TEMPLATES
from crm_core.access import least
from crm_core.cases import (
    CaseFilter,
    assign_case,
    case_openings,
    close_case,
    get_case,
    interactions_of_case,
    resolve_case,
    review_cases,
)
from crm_core.errors import CrmError, NotFound
from crm_core.models import (
    CASE_STATUSES,
    SEVERITIES,
    CaseInteraction,
    ComplaintCase,
    ComplaintSignal,
    Customer,
    Interaction,
    TranscriptSegment,
    User,
)
from cti_server.control import RecordingNames
from cti_server.events import CallKey

ROLE = least("case.review")
ROOT_CAUSES = (
    "agent behaviour",
    "agent knowledge",
    "billing error",
    "delivery partner",
    "product defect",
    "process or policy",
    "long wait",
    "system outage",
)
# Asterisk's uniqueid/linkedid: epoch.sequence, with the system name in front when one is set
LINKEDID = re.compile(r"(?:[A-Za-z0-9_]{1,32}-)?[0-9]{1,20}\.[0-9]{1,10}")
_CATEGORY = re.compile(r"[a-z_]{1,40}")
WEEKS = 12
_FILTER_KEYS = ("severity", "category", "status", "agent", "from", "to")


class _BadFilter(ValueError):
    """A filter value that is not one of the choices."""


# -- the list -------------------------------------------------------------------------------------


def _filter_of(query: MultiMapping[str], zone: tzinfo) -> tuple[CaseFilter, dict[str, str]]:
    """The filters of the list's form (empty: any); unknown values are refused, not ignored.
    Dates are days where the contact center is (``zone``)."""
    chosen = {key: query.get(key, "").strip()[:40] for key in _FILTER_KEYS}

    def _one_of(key: str, allowed: tuple[str, ...] | None) -> str | None:
        value = chosen[key]
        if not value:
            return None
        if allowed is not None and value not in allowed:
            raise _BadFilter(f"{key}: not one of {', '.join(allowed)}")
        if allowed is None and not _CATEGORY.fullmatch(value):
            raise _BadFilter(f"{key}: letters and _ only")
        return value

    def _day(key: str) -> datetime | None:
        value = chosen[key]
        if not value:
            return None
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise _BadFilter(f"{key}: a date like 2026-11-23") from None
        return datetime(day.year, day.month, day.day, tzinfo=zone)

    agent = chosen["agent"]
    if agent and not agent.isdigit():
        raise _BadFilter("agent: a user id")
    until = _day("to")
    where = CaseFilter(
        severity=_one_of("severity", SEVERITIES),
        category=_one_of("category", None),
        status=_one_of("status", CASE_STATUSES),
        agent_id=int(agent) if agent else None,
        opened_from=_day("from"),
        opened_before=until + timedelta(days=1) if until else None,  # "to" is inclusive
    )
    return where, chosen


async def _viewer(db: AsyncSession, request: web.Request) -> User:
    user = await db.get(User, request[UI_SESSION].user_id)
    if user is None or not user.active:
        raise web.HTTPForbidden(text="your user is gone or disabled")
    return user


async def _customer_names(db: AsyncSession, ids: set[int]) -> dict[int, str]:
    rows = await db.execute(select(Customer.id, Customer.name).where(Customer.id.in_(ids)))
    return {row_id: name for row_id, name in rows}


async def _user_names(db: AsyncSession, ids: set[int]) -> dict[int, str]:
    rows = await db.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
    return {row_id: name for row_id, name in rows}


async def _users(db: AsyncSession, *roles: str) -> list[User]:
    query = select(User).where(User.active.is_(True)).order_by(User.display_name)
    if roles:
        query = query.where(User.role.in_(roles))
    return list(await db.scalars(query))


@pages.route("GET", "/complaints", ROLE, name="complaints")
async def list_page(request: web.Request) -> web.StreamResponse:
    try:
        where, chosen = _filter_of(request.query, request.app[DEPS].zone)
    except _BadFilter as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    async with request.app[DEPS].db() as db:
        viewer = await _viewer(db, request)
        cases = await review_cases(db, viewer, where)
        customers = await _customer_names(db, {c.customer_id for c in cases})
        owners = await _user_names(db, {c.owner_id for c in cases if c.owner_id is not None})
        agents = await _users(db, "agent")
    query = urlencode({k: v for k, v in chosen.items() if v})
    return render(
        request,
        "complaints.html",
        cases=cases,
        customers=customers,
        owners=owners,
        agents=agents,
        chosen=chosen,
        query=query,
        severities=SEVERITIES,
        categories=request.app[DEPS].complaint_categories,
        statuses=CASE_STATUSES,
    )


@pages.route("GET", "/complaints/{chart:by-category|by-week}.svg", ROLE, name="complaint_chart")
async def chart(request: web.Request) -> web.StreamResponse:
    """Complaints by category or by week, of the cases the list's filters select."""
    try:
        where, _ = _filter_of(request.query, request.app[DEPS].zone)
    except _BadFilter as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    async with request.app[DEPS].db() as db:
        openings = await case_openings(db, where)
    if request.match_info["chart"] == "by-category":
        categories = request.app[DEPS].complaint_categories
        known = list(categories) + sorted({c for c, _ in openings} - set(categories))
        counts = [(c, sum(1 for k, _ in openings if k == c)) for c in known]
        geometry = charts.labelled_bars("Complaints by category", counts)
    else:
        last = where.opened_before or datetime.now(UTC)
        first = where.opened_from or last - timedelta(weeks=WEEKS)
        geometry = charts.labelled_bars(
            f"Complaints by week (from Monday, {request.app[DEPS].settings.time_zone})",
            charts.weekly(first, last, [o for _, o in openings], request.app[DEPS].zone),
        )
    body = request.app[TEMPLATES].get_template("chart.svg").render(**geometry)
    return web.Response(
        text=body, content_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )


# -- a case ---------------------------------------------------------------------------------------


@dataclass
class Piece:
    """A run of a segment's text: plain, or an evidence span that seeks the audio."""

    text: str
    start: float | None = None  # seconds into the call, for evidence
    cue: str = ""


@dataclass
class Line:
    speaker: str
    start: float
    end: float
    pieces: list[Piece]
    flagged: bool


@dataclass
class Call:
    """One interaction of the case, as the page shows it."""

    row: Interaction
    linkedid: str | None
    audio: bool
    lines: list[Line] = field(default_factory=list)

    @property
    def offset(self) -> float:
        """Seconds of recording before the answer, where transcript times start."""
        return recording_offset(self.row)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _spans(evidence: list[Any], count: int) -> dict[int, list[tuple[int, int, float | None, str]]]:
    """Evidence spans by segment index (char_start, char_end, seconds, cue), well-formed only."""
    spans: dict[int, list[tuple[int, int, float | None, str]]] = {}
    for item in evidence:
        if not isinstance(item, dict):
            continue
        index, lo, hi = item.get("segment"), item.get("char_start"), item.get("char_end")
        if not (isinstance(index, int) and isinstance(lo, int) and isinstance(hi, int)):
            continue
        if 0 <= index < count and 0 <= lo < hi:
            spans.setdefault(index, []).append(
                (lo, hi, _number(item.get("start")), str(item.get("cue", ""))[:120])
            )
    return spans


def highlighted(
    segment: TranscriptSegment, spans: list[tuple[int, int, float | None, str]]
) -> list[Piece]:
    """The segment's text cut into plain runs and evidence spans (overlaps merged into the
    first span, spans past the end clipped)."""
    text = segment.text
    pieces: list[Piece] = []
    at = 0
    for first, last, seconds, cue in sorted(spans):
        lo, hi = max(first, at), min(last, len(text))
        if lo >= hi:
            continue
        if lo > at:
            pieces.append(Piece(text[at:lo]))
        pieces.append(Piece(text[lo:hi], seconds if seconds is not None else segment.start, cue))
        at = hi
    if at < len(text) or not pieces:
        pieces.append(Piece(text[at:]))
    return pieces


def linkedid_of(row: Interaction, node: str) -> str | None:
    """The linkedid of a call on ``node`` (whose recordings this server sees), when it looks
    like one; the interaction's key is ``node:linkedid``."""
    try:
        key = CallKey.parse(row.external_key)
    except ValueError:
        return None
    return key.linkedid if key.node == node and LINKEDID.fullmatch(key.linkedid) else None


def recording_offset(row: Interaction) -> float:
    """Where the answer falls in the call's mix: the dialplan starts recording as the caller
    joins the queue (``cti-record``), transcript times count from the answer, so the queue wait
    comes first (the post-call transcription skips it the same way)."""
    if row.queued_at is None or row.answered_at is None:
        return 0.0
    return max(0.0, (row.answered_at - row.queued_at).total_seconds())


def recording_of(folder: Path | None, names: RecordingNames, linkedid: str) -> Path | None:
    """The call's mix in Asterisk's monitor directory, refusing anything that is not a plain
    file directly inside it."""
    if folder is None or not LINKEDID.fullmatch(linkedid):
        return None
    root = folder.resolve()
    path = (root / names(linkedid)[0]).resolve()
    if path.parent != root or not path.is_file():
        return None
    return path


async def _calls(
    db: AsyncSession,
    case: ComplaintCase,
    node: str,
    recordings: tuple[Path | None, RecordingNames],
) -> tuple[list[Call], list[str]]:
    """The case's calls with their transcripts; the evidence that is no span (call facts)."""
    source: int | None = None
    if case.source_signal_id is not None:
        signal = await db.get(ComplaintSignal, case.source_signal_id)
        source = signal.interaction_id if signal else None
    rows = await interactions_of_case(db, case.id)
    if source is None and rows:
        source = rows[0].id
    evidence = [e for e in case.evidence if isinstance(e, dict)]
    calls = []
    for row in rows:
        linkedid = linkedid_of(row, node)
        call = Call(row, linkedid, bool(linkedid and recording_of(*recordings, linkedid)))
        # evidence indexes segments in the order the transcript was stored (the event's order)
        segments = list(
            await db.scalars(
                select(TranscriptSegment)
                .where(TranscriptSegment.interaction_id == row.id)
                .order_by(TranscriptSegment.id)
            )
        )
        spans = _spans(evidence, len(segments)) if row.id == source else {}
        order = sorted(range(len(segments)), key=lambda i: (segments[i].start, i))
        for index in order:
            segment = segments[index]
            call.lines.append(
                Line(
                    segment.speaker,
                    segment.start,
                    segment.end,
                    highlighted(segment, spans.get(index, [])),
                    index in spans,
                )
            )
        calls.append(call)
    facts = [_fact_text(e) for e in evidence if not isinstance(e.get("segment"), int)]
    return calls, facts


def _fact_text(evidence: dict[str, Any]) -> str:
    """What a piece of evidence without a transcript span says: its cue, else its fields.

    Cases opened by the API, by hand or by the demo's seed carry evidence of any shape; the page
    shows each readably instead of failing on a missing key."""
    cue = evidence.get("cue")
    if cue:
        return str(cue)[:200]
    return "; ".join(f"{key}: {value}" for key, value in sorted(evidence.items()))[:200]


async def _case_page(request: web.Request, status: int = 200, error: str = "") -> web.Response:
    deps = request.app[DEPS]
    case_id = int(request.match_info["id"])
    async with deps.db() as db:
        viewer = await _viewer(db, request)
        try:
            case = await get_case(db, case_id, viewer)
        except NotFound as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        customer = await db.get(Customer, case.customer_id)
        recordings = (deps.recordings_path, deps.recording_names)
        calls, facts = await _calls(db, case, deps.node, recordings)
        users = await _users(db)
    owner = next((u for u in users if u.id == case.owner_id), None)
    return render(
        request,
        "complaint.html",
        status=status,
        case=case,
        customer=customer,
        calls=calls,
        facts=facts,
        users=users,
        owner=owner,
        root_causes=ROOT_CAUSES,
        error=error,
        message=request.query.get("message", "")[:200],
    )


@pages.route("GET", "/complaints/{id:[0-9]{1,12}}", ROLE, name="complaint")
async def case_page(request: web.Request) -> web.StreamResponse:
    return await _case_page(request)


async def _act(request: web.Request, what: str) -> web.StreamResponse:
    """One workflow step in a transaction; a refused step shows the case with the reason."""
    form = await request.post()
    case_id = int(request.match_info["id"])
    try:
        async with request.app[DEPS].db() as db, db.begin():
            viewer = await _viewer(db, request)
            case = await get_case(db, case_id, viewer)
            if what == "assign":
                owner = str(form.get("owner_id", ""))
                if not owner.isdigit():
                    raise web.HTTPBadRequest(text="owner_id: choose a user")
                await assign_case(db, case, int(owner))
                done = "assigned"
            elif what == "resolve":
                cause = str(form.get("root_cause", ""))
                if not cause.strip():
                    return await _case_page(request, 422, "Say what caused the complaint.")
                await resolve_case(db, case, cause)
                done = "resolved"
            else:
                await close_case(db, case)
                done = "closed"
    except NotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    except CrmError as exc:
        return await _case_page(request, exc.status, str(exc))
    target = request.app.router["complaint"].url_for(id=str(case_id))
    raise web.HTTPSeeOther(target.with_query(message=f"Case {case_id} {done}."))


@pages.route("POST", "/complaints/{id:[0-9]{1,12}}/assign", ROLE, name="complaint_assign")
async def assign(request: web.Request) -> web.StreamResponse:
    return await _act(request, "assign")


@pages.route("POST", "/complaints/{id:[0-9]{1,12}}/resolve", ROLE, name="complaint_resolve")
async def resolve(request: web.Request) -> web.StreamResponse:
    return await _act(request, "resolve")


@pages.route("POST", "/complaints/{id:[0-9]{1,12}}/close", ROLE, name="complaint_close")
async def close(request: web.Request) -> web.StreamResponse:
    return await _act(request, "close")


@pages.route("GET", "/complaints/recordings/{linkedid}", ROLE, name="complaint_audio")
async def recording(request: web.Request) -> web.StreamResponse:
    """The call's mix (ranges served, so the player can seek), for calls of a complaint case."""
    deps = request.app[DEPS]
    linkedid = request.match_info["linkedid"]
    if not LINKEDID.fullmatch(linkedid):
        raise web.HTTPBadRequest(text="not a linkedid")
    async with deps.db() as db:
        in_case = await db.scalar(
            select(Interaction.id)
            .join(CaseInteraction, CaseInteraction.interaction_id == Interaction.id)
            .where(Interaction.external_key == str(CallKey(deps.node, linkedid)))
            .limit(1)
        )
    path = recording_of(deps.recordings_path, deps.recording_names, linkedid) if in_case else None
    if path is None:
        raise web.HTTPNotFound(text="no recording of this call")
    return web.FileResponse(
        path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, no-store"}
    )
