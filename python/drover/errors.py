"""Errors raised by the drover client.

Every failure drover-web reports (a 4xx/5xx answer with the JSON body
`{"error": "...", "code": "...", "errors": [...]}`) becomes a DroverError
subclass chosen by HTTP status, carrying status, code and message; a
refused spec (400 with `errors`) is an InvalidSpec whose `.errors` are
SpecProblem(file, line, col, message). Failures to reach drover-web at
all are Unavailable (status 0) so that callers catch one family.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "DroverError", "BadRequest", "InvalidSpec", "Unauthenticated", "PermissionDenied",
    "NotFound", "Conflict", "RateLimited", "Unavailable", "SpecProblem", "error_from_response",
]


@dataclass(frozen=True)
class SpecProblem:
    """One error in a refused spec, at FILE:LINE:COL (1-based; 0 = unknown)."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        if self.line:
            return "%s:%d:%d: %s" % (self.file, self.line, self.col, self.message)
        return "%s: %s" % (self.file, self.message) if self.file else self.message


class DroverError(Exception):
    """A request drover-web (or droverd behind it) refused or could not do.

    status: the HTTP status (0 when drover-web could not be reached);
    code: drover's error code ("invalid", "not_found", "permission_denied",
    ...); message: the human-readable text; body: the decoded JSON answer
    (or None)."""

    def __init__(self, message: str, status: int = 0, code: str = "",
                 body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.body = body

    def __str__(self) -> str:
        head = "HTTP %d" % self.status if self.status else "drover"
        if self.code:
            head += " (%s)" % self.code
        return "%s: %s" % (head, self.message)


class BadRequest(DroverError):
    """400: the request is malformed or refused as invalid."""


class InvalidSpec(BadRequest):
    """400 for a refused spec; .errors lists every problem found."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid",
                 body: Any = None, errors: list[SpecProblem] | None = None) -> None:
        super().__init__(message, status, code, body)
        self.errors: list[SpecProblem] = list(errors or [])

    def __str__(self) -> str:
        if not self.errors:
            return super().__str__()
        return "spec refused:\n" + "\n".join("  " + str(e) for e in self.errors)


class Unauthenticated(DroverError):
    """401: no token, or a token droverd does not accept."""


class PermissionDenied(DroverError):
    """403: the token's role may not do this."""


class NotFound(DroverError):
    """404: no such run, task, artifact, agent, ... (or route)."""


class Conflict(DroverError):
    """409: the request conflicts with the current state."""


class RateLimited(DroverError):
    """429: too many requests; .retry_after in seconds (or None)."""

    retry_after: float | None = None


class Unavailable(DroverError):
    """503, or drover-web could not be reached (status 0)."""


_BY_STATUS: dict[int, type[DroverError]] = {
    400: BadRequest, 401: Unauthenticated, 403: PermissionDenied, 404: NotFound,
    409: Conflict, 429: RateLimited, 503: Unavailable,
}


def error_from_response(status: int, body: bytes, headers: Any = None) -> DroverError:
    """The DroverError for an HTTP answer with status >= 400 and body."""
    import json

    parsed: Any = None
    message, code = "", ""
    try:
        parsed = json.loads(body.decode("utf-8", "replace")) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        message = str(parsed.get("error") or "")
        code = str(parsed.get("code") or "")
    if not message:
        message = body.decode("utf-8", "replace").strip()[:2000] or "HTTP %d" % status
    problems = []
    if isinstance(parsed, dict):
        for e in parsed.get("errors") or parsed.get("spec_errors") or []:
            if isinstance(e, dict):
                problems.append(SpecProblem(str(e.get("file") or ""), int(e.get("line") or 0),
                                            int(e.get("col") or 0), str(e.get("message") or "")))
    if status == 400 and problems:
        return InvalidSpec(message, status, code or "invalid", parsed, problems)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = Unavailable if status in (502, 504) else DroverError
    err = cls(message, status, code, parsed)
    if isinstance(err, RateLimited) and headers is not None:
        try:
            err.retry_after = float(headers.get("Retry-After"))
        except (TypeError, ValueError):
            err.retry_after = None
    return err
