"""API errors raised by any service's logic.

Logic raises these; each service's API layer turns them into its own wire
format (Keystone ``{"error": ...}``, Nova ``{"itemNotFound": ...}``, ...), so a
message is written once and never reaches the client as a traceback.
"""

from __future__ import annotations


class ApiError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, message: str | None = None, **extra):
        super().__init__(message or self.title)
        self.message = message or self.title
        self.extra = extra  # e.g. headers={"WWW-Authenticate": ...}


class BadRequest(ApiError):
    status, title = 400, "Bad Request"


class Unauthorized(ApiError):
    status, title = 401, "Unauthorized"


class Forbidden(ApiError):
    status, title = 403, "Forbidden"


class NotFound(ApiError):
    status, title = 404, "Not Found"


class MethodNotAllowed(ApiError):
    status, title = 405, "Method Not Allowed"


class NotAcceptable(ApiError):
    status, title = 406, "Not Acceptable"


class Conflict(ApiError):
    status, title = 409, "Conflict"


class LengthRequired(ApiError):
    status, title = 411, "Length Required"


class PreconditionFailed(ApiError):
    status, title = 412, "Precondition Failed"


class PayloadTooLarge(ApiError):
    status, title = 413, "Request Entity Too Large"


class UnsupportedMediaType(ApiError):
    status, title = 415, "Unsupported Media Type"


class RangeNotSatisfiable(ApiError):
    status, title = 416, "Requested Range Not Satisfiable"


class UnprocessableEntity(ApiError):
    status, title = 422, "Unprocessable Entity"


class ServiceUnavailable(ApiError):
    status, title = 503, "Service Unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The database did not answer in time (locked by another connection, restarting):
    the request changed nothing and may simply be sent again, so the 503 says when."""

    RETRY_AFTER = 5  # seconds

    def __init__(self, message: str = "The database is not available; try again later."):
        super().__init__(message, headers={"Retry-After": str(self.RETRY_AFTER)})


class NotImplementedYet(ApiError):
    status, title = 501, "Not Implemented"
