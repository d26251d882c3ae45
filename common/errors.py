"""The error hierarchy. ``api/errors.py`` maps it to HTTP in one place.

Each error carries the Binder protocol's ``type`` name, a sentence a user
can act on, and suggestions. Errors pickle (Celery may carry them).
"""

from __future__ import annotations

from common.models import FailureCause


class BinderError(Exception):
    """Base of every error a user may see."""

    type = "internalError"
    status = 500

    def __init__(self, message: str, suggestions: list[str] | None = None) -> None:
        super().__init__(message, suggestions)
        self.message = message
        self.suggestions = list(suggestions or [])

    def __str__(self) -> str:
        return self.message

    def to_body(self) -> dict[str, object]:
        return {"type": self.type, "error": self.message, "suggestions": self.suggestions}

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the body."""
        return {}


class ConfigError(BinderError):
    type = "badConfig"
    status = 500


class MalformedRequest(BinderError):
    type = "malformedRequest"
    status = 422


class BadRepoSource(BinderError):
    type = "badRepoSource"
    status = 422


class AlreadyBuilding(BinderError):
    """A start of a build that is running: the answer names it, so a client can follow it."""

    type = "alreadyBuilding"
    status = 409

    def __init__(self, message: str, suggestions: list[str] | None = None,
                 name: str | None = None) -> None:
        super().__init__(message, suggestions)
        self.args = (message, self.suggestions, name)  # pickled with its name
        self.name = name

    def to_body(self) -> dict[str, object]:
        return {**super().to_body(), **({"name": self.name} if self.name else {})}


class NameTaken(BinderError):
    """A build name is held by another repository or ref (names are one-to-one)."""

    type = "nameTaken"
    status = 409


class NoBuildInfo(BinderError):
    type = "noBuildInfo"
    status = 404


class DoesNotExist(BinderError):
    type = "doesNotExist"
    status = 404


class LogPruned(BinderError):
    """The build's stored log was deleted by retention (``BINDER_LOG_RETENTION_DAYS``)."""

    type = "logPruned"
    status = 410


class BadQuery(BinderError):
    type = "badQuery"
    status = 422


class BadDatabase(BinderError):
    type = "badDatabase"
    status = 503


class NoDatabase(BinderError):
    type = "noDatabase"
    status = 503


class Unauthorized(BinderError):
    type = "unauthorized"
    status = 403


class InsufficientScope(BinderError):
    """A valid key whose scope does not allow the request."""

    type = "insufficientScope"
    status = 403


class RepositoryBanned(BinderError):
    type = "repositoryBanned"
    status = 403


class RateLimited(BinderError):
    """Too many starts; ``retry_after`` seconds until one is allowed again."""

    type = "rateLimited"
    status = 429

    def __init__(self, message: str, suggestions: list[str] | None = None,
                 retry_after: int = 1) -> None:
        super().__init__(message, suggestions)
        self.args = (message, suggestions, retry_after)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyFollowers(BinderError):
    """This API process follows as many logs as it may (``BINDER_API_THREADS``)."""

    type = "tooManyFollowers"
    status = 503

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class BuildFailure(BinderError):
    """A build ended badly; the message is stored as the build's ``error``, the
    ``cause`` as its ``cause``.

    Most failures are the repository's (the default); a raise site that knows
    the farm, the resources or a time limit failed the build passes ``cause``,
    and a subclass may set its own default.
    """

    type = "buildFailed"
    status = 500
    cause = FailureCause.REPOSITORY

    def __init__(self, message: str, suggestions: list[str] | None = None,
                 cause: FailureCause | None = None) -> None:
        super().__init__(message, suggestions)
        if cause is not None:
            self.cause = cause  # an instance attribute: pickled with the error's state


class EngineFault(BuildFailure):
    """The Docker engine failed a build for a reason of its own, not the repository's
    (it lost the build context it was streamed): the phase runs again, as after an
    engine that stopped answering, and fails the build only when that keeps happening."""

    cause = FailureCause.FARM


class LeaseLost(Exception):
    """This worker no longer holds the build's lease; stop without writing."""


class BuildCancelled(Exception):
    """The build was cancelled while a phase ran."""
