"""The hub's error hierarchy; mapped to HTTP once, in hub/app.py."""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub reports to a caller."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadRequest(HubError):
    """The request could not be read (malformed body, wrong content type)."""

    status_code = 400


class Unauthorized(HubError):
    """No valid credential (API key, webhook signature)."""

    status_code = 401


class Forbidden(HubError):
    """Authenticated, but not allowed to do this."""

    status_code = 403


class NotFound(HubError):
    """The addressed object does not exist."""

    status_code = 404


class Conflict(HubError):
    """The request clashes with the current state (e.g. a slug already taken)."""

    status_code = 409


class PayloadTooLarge(HubError):
    """The body is over the configured limit."""

    status_code = 413


class UnprocessableInput(HubError):
    """The body was read but its content is not usable."""

    status_code = 422


class UnsupportedMediaType(HubError):
    """The body's content type is not one this endpoint reads."""

    status_code = 415


class Misconfigured(HubError):
    """The server's own configuration is broken (not the caller's fault)."""

    status_code = 500


class RateLimited(HubError):
    """Too many requests; retry after ``retry_after`` seconds."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ContactMerged(HubError):
    """The contact was merged into another; callers are redirected to the survivor."""

    status_code = 308

    def __init__(self, absorbed_id: int, survivor_id: int) -> None:
        super().__init__(f"contact {absorbed_id} was merged into contact {survivor_id}")
        self.absorbed_id = absorbed_id
        self.survivor_id = survivor_id


class ServiceUnavailable(HubError):
    """A feature is not configured on this hub (e.g. a provider's key is missing), or the database is down."""

    status_code = 503

    def __init__(self, message: str, *, field: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after


class ProviderRejected(HubError):
    """A provider request refused with a status the provider reads as "do not retry" (Mailgun: 406)."""

    def __init__(self, message: str, *, status_code: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.status_code = status_code


class UpstreamUnavailable(HubError):
    """A provider the hub fetches from on the caller's behalf could not serve (e.g. Twilio's recording media)."""

    def __init__(self, message: str, *, status_code: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.status_code = status_code
