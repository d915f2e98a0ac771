"""The router's decision in an agent's words, for the pop's "Why you".

The router explains each assignment as a JSON record (``CallRouted.decision``, format version 1,
stored on the interaction for supervisors; ``cti_server/routing/explain.py``): the rule that
decided, the stage of the call's wait, its priority terms and the candidates in the order the
tie-break put them. An agent reads it as a few labelled lines: what decided, how the call stood,
who else could have taken it and why it came here instead. Unknown rules and fields (a newer
router) are shown as they are, never dropped.
"""

from __future__ import annotations

from typing import Any

Words = dict[str, str]

# the router's rule names (cti_server/routing/rules.py) -> (what decided, why not the others)
_RULES: dict[str, tuple[str, str]] = {
    "supervisor move to agent": ("a supervisor gave you this call", "the supervisor chose you"),
    "preferred agent within window": (
        "you served this customer before",
        "they have not served this customer lately",
    ),
    "only qualified agent": ("you were the only qualified agent free", ""),
    "tie-break longest idle": (
        "of the qualified agents free, you had waited longest for a call",
        "free for less time than you",
    ),
    "tie-break lowest occupancy": (
        "of the qualified agents free, you had been the least busy",
        "busier than you lately",
    ),
    "tie-break agent id": (
        "qualified agents tied: the lowest extension goes first",
        "a higher extension, all else equal",
    ),
}
_ORDER = {
    "tier head start": "the customer's tier",
    "value score": "the customer's value",
    "supervisor priority change": "a supervisor raised its priority",
    "callback yields to live callers": "the older one is a callback, which waits for live callers",
}
_CHOSEN = {"supervisor move to agent", "preferred agent within window"}
MAX_NAMED = 5  # other candidates named; the rest counted


def decision_words(decision: dict[str, Any]) -> Words:
    """Labelled lines for one assignment's explanation."""
    words: Words = {}
    rule = str(decision.get("rule", ""))
    rules = [str(r) for r in decision.get("rules") or []]
    stage = decision.get("stage") or {}
    decided, not_them = _RULES.get(rule, (rule, ""))
    if rule and rule not in _RULES and stage.get("label") == rule:
        decided = f"the call had waited long enough to widen the search: {rule}"
        tie_break = next((r for r in reversed(rules) if r in _RULES), "")
        not_them = _RULES.get(tie_break, ("", ""))[1]
    if decided:
        words["decided by"] = decided
    priority = decision.get("priority") or {}
    if priority:
        words["the call"] = _call_line(priority)
    if decision.get("overtook"):
        why = next((_ORDER[r] for r in rules if r in _ORDER), "its priority")
        words["went ahead of an older call"] = f"because of {why}"
    candidates = [c for c in decision.get("candidates") or [] if isinstance(c, dict)]
    others = [c for c in candidates if str(c.get("agent")) != str(decision.get("agent"))]
    if others or decision.get("more_candidates"):
        named = ", ".join(_candidate(c) for c in others[:MAX_NAMED])
        more = len(others) - MAX_NAMED
        if more > 0 or decision.get("more_candidates"):
            named = f"{named} and others" if named else "others"
        words["also qualified"] = named
        if not_them:
            words["why not them"] = not_them
    elif rule and rule not in _CHOSEN:  # a chosen agent's decision names no others
        words["also qualified"] = "nobody else"
    return words


def no_answer_words(rang: list[dict[str, Any]]) -> Words:
    """The agents a call rang out at before it came here, and what the router did about it."""
    if not rang:
        return {}
    each = []
    for ring in rang:
        seconds = ring.get("rang_s")
        after = f" after {float(seconds):.0f} s" if isinstance(seconds, int | float) else ""
        each.append(f"{ring.get('agent', '?')}{after}")
    return {"rang out first at": ", ".join(each) + " (paused: not answering)"}


def _call_line(priority: dict[str, Any]) -> str:
    parts = []
    if priority.get("tier"):
        parts.append(f"{priority['tier']} customer")
    waited = priority.get("waited_s")
    if isinstance(waited, int | float):
        parts.append(f"waited {_seconds(waited)}")
    if priority.get("value"):
        parts.append("a valued customer")
    if priority.get("callback"):
        parts.append("a callback")
    if priority.get("adjust"):
        parts.append("priority changed by a supervisor")
    return ", ".join(parts)


def _candidate(candidate: dict[str, Any]) -> str:
    idle = candidate.get("idle_s")
    free = f" (free {_seconds(idle)})" if isinstance(idle, int | float) else ""
    return f"{candidate.get('agent', '?')}{free}"


def _seconds(value: float) -> str:
    seconds = round(float(value))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
