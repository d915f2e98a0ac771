"""Domain errors of the CRM, raised where a precondition is checked; the API maps them to HTTP."""

from __future__ import annotations


class CrmError(Exception):
    """Base of every CRM domain error; ``status`` is the HTTP status the API answers with."""

    status = 400
    code = "crm_error"


class NotFound(CrmError):
    status = 404
    code = "not_found"


class Conflict(CrmError):
    status = 409
    code = "conflict"


class Forbidden(CrmError):
    status = 403
    code = "forbidden"


class InvalidInput(CrmError):
    status = 422
    code = "invalid"


class InvalidTransition(Conflict):
    code = "invalid_transition"
