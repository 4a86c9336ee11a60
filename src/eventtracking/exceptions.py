"""The library's exceptions. Every error we raise derives from `EventTrackingError`."""

from __future__ import annotations


class EventTrackingError(Exception):
    """Root of every exception raised by eventtracking."""


class ImproperlyConfigured(EventTrackingError, ValueError):
    """The configuration cannot be used; the message names the path and the fix.

    A `ValueError` too, as the configuration errors of Open edX event-tracking
    are, so existing ``except ValueError`` clauses keep catching them.
    """


class EventError(EventTrackingError, ValueError):
    """An emitted event is malformed (strict mode only; otherwise it is repaired)."""


class SerializationError(EventError):
    """A value in an event cannot be encoded as JSON (strict mode only).

    `event_name` and `path` (for example ``data.user.avatar``) say where.
    """

    def __init__(self, event_name: str, path: str, problem: str) -> None:
        self.event_name = event_name
        self.path = path
        self.problem = problem
        super().__init__(f"event {event_name!r}: field {path}: {problem}")


class StoreError(EventTrackingError):
    """A store cannot be opened or read; the message says which and why."""


class MissingExtraError(EventTrackingError, ImportError):
    """An optional dependency is not installed; the message names the extra."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"{module} is not installed; install it with: pip install 'event-tracking[{extra}]'"
        )


class DeliveryError(EventTrackingError):
    """A backend could not deliver; tells the delivery worker whether to retry.

    Backends translate driver errors into `RetryableError` or `TerminalError`
    (``raise RetryableError(...) from exc``). Any other exception from a
    backend counts as retryable.
    """

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryableError(DeliveryError):
    """A transient failure (connection lost, HTTP 5xx/408/429); `retry_after` in seconds."""


class TerminalError(DeliveryError):
    """A failure that retrying cannot fix (HTTP 4xx, a rejected event): dead-letter it."""

    retryable = False


class ValidationError(EventError):
    """An event breaks its documented type (strict validation policy only).

    `event_name`, `field` (for example ``data.position``) and `rule` (for
    example ``wrong_type``) say what and where.
    """

    def __init__(self, event_name: str, field: str, rule: str, detail: str) -> None:
        self.event_name = event_name
        self.field = field
        self.rule = rule
        self.detail = detail
        super().__init__(f"event {event_name!r}: {field}: {rule}: {detail}")
