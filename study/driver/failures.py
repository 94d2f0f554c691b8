"""One-line descriptions of failures that come back from Ray (a worker's or a trial's exception, wrapped)."""

from __future__ import annotations


class TrainingFailed(RuntimeError):
    """A training (train, a reference) failed inside Ray after its retries; the message names its cause."""


def error_cause(text: str) -> str | None:
    """The last 'SomethingError: message' line of a traceback (e.g. DataError: image X cannot be read)."""
    causes = [line.strip() for line in text.splitlines() if "Error:" in line and not line.strip().startswith("File ")]
    return causes[-1] if causes else None


def describe_failure(error: BaseException) -> str | None:
    """The innermost cause of a Ray failure as one line, or None for errors that are not Ray's."""
    if isinstance(error, TrainingFailed):
        return str(error)
    if not type(error).__module__.startswith("ray."):
        return None
    text = str(error).strip()
    cause = error_cause(text) or (text.splitlines()[-1].strip() if text else type(error).__name__)
    return f"training failed in a Ray worker: {cause} (the worker log above has the traceback)"
