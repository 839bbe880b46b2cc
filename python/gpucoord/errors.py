"""Exceptions. Every error the coordinator answers ({"error": code, "message": ...})
becomes a GpucoordError subclass chosen by its code; ``.code`` is that API error
string, ``.status`` the HTTP status (None when no answer came back)."""

__all__ = [
    "GpucoordError", "BadRequest", "Unauthorized", "NotFound", "Conflict", "NeverFits",
    "LimitReached", "CouldNotFree", "Unavailable", "CoordinatorUnavailable", "WaitTimeout",
    "LeaseTimeout", "DemandTimeout", "LeaseLost", "error_from_answer",
]


class GpucoordError(Exception):
    """Base class. ``code``: the API error code ("never_fits", ...); ``status``: the
    HTTP status or None; ``message``: the coordinator's sentence; ``body``: the parsed
    answer (a dict) when there was one."""

    default_code = "error"

    def __init__(self, message, code=None, status=None, body=None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.status = status
        self.body = body

    def __str__(self):
        return self.message


class BadRequest(GpucoordError):
    """400 bad_request (also too_large, method_not_allowed): the request was refused as
    malformed; nothing changed."""
    default_code = "bad_request"


class Unauthorized(GpucoordError):
    """401 unauthorized: a bearer token is missing or wrong ($GPUCOORD_TOKEN); 403
    forbidden: this caller may not do that (a process resident, another user's pid,
    another caller's lease or resident: docs/security.md)."""
    default_code = "unauthorized"


class NotFound(GpucoordError):
    """404 not_found: no such lease, resident or path."""
    default_code = "not_found"


class Conflict(GpucoordError):
    """409 conflict: the object is busy or in the wrong state (e.g. unloading a resident
    that is not loaded)."""
    default_code = "conflict"


class NeverFits(GpucoordError):
    """409 never_fits: the lease can never fit on the GPU; the message has the
    arithmetic. Waiting will not help."""
    default_code = "never_fits"


class LimitReached(GpucoordError):
    """429 limit_reached: too many leases or residents."""
    default_code = "limit_reached"


class CouldNotFree(GpucoordError):
    """503 could_not_free: residents could not be made to free enough memory (or a
    queued lease failed for that reason)."""
    default_code = "could_not_free"


class Unavailable(GpucoordError):
    """503 unavailable: e.g. a demanded resident is failed or gone."""
    default_code = "unavailable"


class CoordinatorUnavailable(GpucoordError):
    """No answer: nothing listens at the URL, the socket is missing, or the coordinator
    did not answer within the timeout."""
    default_code = "connect_failed"


class WaitTimeout(GpucoordError):
    """A wait ended before the thing waited for happened."""
    default_code = "timeout"


class LeaseTimeout(WaitTimeout):
    """The lease was still queued when wait_s ended; the request was withdrawn."""


class DemandTimeout(WaitTimeout):
    """A demanded resident was not loaded again within wait_s (its demand stays queued:
    the coordinator will still bring it back)."""


class LeaseLost(GpucoordError):
    """Raised by Lease.check() once the coordinator said the lease is gone (it expired or
    was ended by someone else): the memory is no longer promised."""
    default_code = "lease_lost"


_BY_CODE = {
    "bad_request": BadRequest,
    "too_large": BadRequest,
    "method_not_allowed": BadRequest,
    "unauthorized": Unauthorized,
    "forbidden": Unauthorized,
    "not_found": NotFound,
    "conflict": Conflict,
    "never_fits": NeverFits,
    "limit_reached": LimitReached,
    "could_not_free": CouldNotFree,
    "unavailable": Unavailable,
    "timeout": WaitTimeout,
    "connect_failed": CoordinatorUnavailable,
}

_BY_STATUS = {400: BadRequest, 401: Unauthorized, 403: Unauthorized, 404: NotFound,
              405: BadRequest, 409: Conflict, 413: BadRequest, 429: LimitReached,
              503: Unavailable, 504: WaitTimeout}


def error_from_answer(status, body, what=""):
    """The exception for a non-2xx answer (body: parsed JSON dict, text or None)."""
    code = message = None
    if isinstance(body, dict):
        code = body.get("error") if isinstance(body.get("error"), str) else None
        message = body.get("message") if isinstance(body.get("message"), str) else None
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status, GpucoordError)
    if message is None:
        text = body if isinstance(body, str) else ""
        message = "%sHTTP %d from the coordinator%s" % (
            what + ": " if what else "", status, (": " + text[:200]) if text else "")
    if code is None:
        code = cls.default_code if cls is not GpucoordError else "http_%d" % status
    return cls(message, code=code, status=status,
               body=body if isinstance(body, dict) else None)
