"""One-line descriptions of failures that come back from Ray (a worker's exception, wrapped)."""

from __future__ import annotations


def describe_failure(error: BaseException) -> str | None:
    """The innermost cause of a Ray failure as one line, or None for errors that are not Ray's."""
    if not type(error).__module__.startswith("ray."):
        return None
    text = str(error).strip().splitlines()
    causes = [line.strip() for line in text if "Error:" in line and not line.strip().startswith("File ")]
    cause = causes[-1] if causes else (text[-1].strip() if text else type(error).__name__)
    return f"training failed in a Ray worker: {cause} (the worker log above has the traceback)"
