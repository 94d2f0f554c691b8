"""Checks that take seconds and run before a study or a training writes anything.

An unreachable MLflow server would otherwise be retried by MLflow's HTTP client for minutes, and an
unreachable Ray address would hang in `ray.init`; a storage folder that cannot be written would fail
only when the first checkpoint is saved. Here each is one line that names the problem and the fix.
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from trainables.config import ConfigError

TIMEOUT_S = 10.0


def redact(uri: str) -> str:
    """The URI without a password (http://user:secret@host -> http://user:***@host), for logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_tracking_uri(uri: str, timeout: float = TIMEOUT_S) -> None:
    """An http(s) store must answer its /health endpoint; a SQLite file's folder must be writable."""
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            answer = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
        except requests.RequestException as error:
            raise ConfigError(f"MLflow tracking server {redact(uri)} is unreachable ({type(error).__name__}): "
                              "start it (mlflow server --host 127.0.0.1 --port PORT ...) or fix --tracking-uri") from None
        if answer.status_code >= 500:
            raise ConfigError(f"MLflow tracking server {redact(uri)} answers HTTP {answer.status_code} on /health: "
                              "check the server's log")
    elif uri.startswith("sqlite:///"):
        check_writable(Path(uri[len("sqlite:///"):]).parent, "--tracking-uri (the SQLite file's folder)")


def check_ray_address(address: str | None, timeout: float = TIMEOUT_S) -> None:
    """`host:port` (or ray://host:port) must accept a TCP connection; 'auto' and None are left to Ray."""
    if not address or address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise ConfigError(f"Ray cluster at {address} is unreachable ({reason}): start it with `ray start --head "
                          "--port PORT` or fix --address (host:port of the head's GCS)") from None


def check_writable(folder: str | Path, what: str = "--storage") -> Path:
    """Create `folder` if needed and write a temporary file in it; returns its absolute path."""
    path = Path(folder).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".imlgcn-write-test-"):
            pass
    except OSError as error:
        raise ConfigError(f"{what} {path} is not writable ({error.strerror or type(error).__name__}): "
                          "pass a folder you can write to") from None
    return path


def preflight(tracking_uri: str, address: str | None, storage: str | Path) -> None:
    """All three checks, cheapest first."""
    check_writable(storage)
    check_tracking_uri(tracking_uri)
    check_ray_address(address)
