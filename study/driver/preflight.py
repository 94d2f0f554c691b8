"""Checks that take seconds and run before a study or a training writes anything.

An unreachable MLflow server would otherwise be retried by MLflow's HTTP client for minutes, and an
unreachable Ray address would hang in `ray.init`; a storage folder that cannot be written would fail
only when the first checkpoint is saved; a missing image would fail in every Ray worker. Here each is
one line that names the problem and the fix.
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from trainables.config import ConfigError, TrialConfig
from trainables.data.labelled_images import data_folder as checked_folder

TIMEOUT_S = 10.0  # the default deadline of each reachability check
DEADLINE_VARIABLE = "IMLGCN_NETWORK_TIMEOUT"  # seconds; MLflow's own calls after the check follow its
#                                               MLFLOW_HTTP_REQUEST_TIMEOUT and MLFLOW_HTTP_REQUEST_MAX_RETRIES


def network_deadline() -> float:
    """Seconds a reachability check waits: $IMLGCN_NETWORK_TIMEOUT, else TIMEOUT_S. Without it MLflow's HTTP
    client retries an unreachable server for about four minutes before it says anything."""
    text = os.environ.get(DEADLINE_VARIABLE, "").strip()
    if not text:
        return TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= 3600:  # NaN fails this too
        raise ConfigError(f"{DEADLINE_VARIABLE}={text!r} is not a deadline: set it to seconds in (0, 3600], "
                          f"e.g. {DEADLINE_VARIABLE}=10")
    return seconds


def redact(uri: str) -> str:
    """The URI without a password (http://user:secret@host -> http://user:***@host), for logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_server(uri: str, timeout: float | None = None) -> None:
    """An http(s) store must answer its /health endpoint within the deadline (other URIs: nothing to do)."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    timeout = network_deadline() if timeout is None else timeout
    try:
        answer = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as error:
        waited = (f" within {timeout:g} s ({DEADLINE_VARIABLE} sets the deadline)"
                  if isinstance(error, requests.Timeout) else "")
        raise ConfigError(f"MLflow tracking server {redact(uri)} is unreachable ({type(error).__name__}{waited}): "
                          "start it (mlflow server --host 127.0.0.1 --port PORT ...) or fix --tracking-uri") from None
    if answer.status_code >= 500:
        raise ConfigError(f"MLflow tracking server {redact(uri)} answers HTTP {answer.status_code} on /health: "
                          "check the server's log")


# The URI schemes MLflow has a tracking store for (a database scheme may name its driver: postgresql+psycopg2)
TRACKING_SCHEMES = ("http", "https", "sqlite", "file", "postgresql", "mysql", "mssql", "databricks")


def check_tracking_uri(uri: str, timeout: float | None = None) -> None:
    """A scheme MLflow knows; an http(s) store must answer its /health endpoint; a SQLite file's folder must
    be writable."""
    scheme = uri.partition("://")[0].split("+")[0].lower()
    if scheme not in TRACKING_SCHEMES:
        raise ConfigError(f"--tracking-uri {redact(uri)}: MLflow has no tracking store for {scheme}:// URIs: use "
                          "sqlite:///PATH.db (the default), http(s)://HOST:PORT (a tracking server) or a database "
                          "URI (postgresql://, mysql://)")
    if uri.startswith(("http://", "https://")):
        check_server(uri, timeout)
    elif uri.startswith("sqlite:///"):
        from trainables.trial.mlflow_schema import check

        check_sqlite_file(uri)
        check_writable(Path(uri[len("sqlite:///"):]).parent, "--tracking-uri (the SQLite file's folder)")
        check(uri)  # a half-made store, or one a newer MLflow wrote: one line now, before Ray starts


def check_sqlite_file(uri: str) -> None:
    """A sqlite:/// URI names a file: a folder there would fail inside SQLite as a 'disk I/O error'."""
    path = Path(uri[len("sqlite:///"):])
    if uri.startswith("sqlite:///") and path.is_dir():
        raise ConfigError(f"--tracking-uri {uri} names the folder {path}, not a SQLite file: name the file, "
                          f"e.g. sqlite:///{path / 'mlflow.db'}")


def check_ray_address(address: str | None, timeout: float | None = None) -> None:
    """`host:port` (or ray://host:port) must accept a TCP connection; 'auto' and None are left to Ray."""
    if not address or address in ("auto", "local"):
        return
    timeout = network_deadline() if timeout is None else timeout
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        if isinstance(error, TimeoutError):
            reason += f" within {timeout:g} s ({DEADLINE_VARIABLE} sets the deadline)"
        raise ConfigError(f"Ray cluster at {address} is unreachable ({reason}): start it with `ray start --head "
                          "--port PORT` or fix --address (host:port of the head's GCS)") from None


def storage_folder(value: str) -> str:
    """--storage as a local folder: a plain path, or a file:// URI's path. Any other URI (s3://, gs://) is
    one line: object-store storage is not supported yet, and a URI read as a path would silently become a
    folder named `s3:` in the working directory."""
    scheme, separator, _ = value.partition("://")
    if not separator or not scheme or "/" in scheme:
        return value
    if scheme.lower() == "file":
        return urlsplit(value).path or "/"
    raise ConfigError(f"--storage {value}: object-store storage ({scheme}://) is not supported yet (study "
                      "state is kept in folders): pass a folder, on a cluster one that every Ray node mounts (NFS, a PVC)")


def check_writable(folder: str | Path, what: str = "--storage") -> Path:
    """Write a temporary file in `folder`, or in its nearest existing parent when it does not exist yet
    (nothing is created: a command that fails later leaves no empty folder behind); returns its absolute path."""
    path = Path(folder).expanduser().absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "not a directory")
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".imlgcn-write-test-"):
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


def prepare_data(config: TrialConfig, progress: Callable[[str], None],
                 index_root: str | Path | None = None) -> tuple[TrialConfig, tuple[str, ...], str]:
    """Resolve data_dir (generating the synthetic set on first use) and the weights, then read both splits
    and open every image, so broken data fails here in seconds, before Ray and before any MLflow run.

    Returns the resolved config, the class names and, with `index_root`, the split index written there
    (trials read it instead of the annotation files: see trainables.training.split_index).
    """
    from trainables.data.datasets import get_dataset, read_split
    from trainables.stages.gcn_inputs import check_word_vectors
    from trainables.data.images import verify_images
    from trainables.data.synthetic import ensure_synthetic

    config.check_data_dir()
    dataset = get_dataset(config.dataset)
    if config.pretrained_path:
        config = replace(config, pretrained_path=str(check_weights(config)))
    elif config.pretrained:
        fetch_pretrained(config, progress)
    if config.dataset == "synthetic":
        config.check_classes(config.synthetic_class_count())  # before spending seconds drawing images
        path = ensure_synthetic(config.data_dir, config.synthetic_classes, config.synthetic_labels,
                                config.synthetic_train_images, config.synthetic_val_images, config.image_size,
                                config.data_seed, progress=progress)
    else:
        path = data_folder(config)
    config = replace(config, data_dir=str(Path(path).absolute()))
    splits = [read_split(config.dataset, config.data_dir, name) for name in (dataset.train_split, dataset.eval_split)]
    classes = splits[0].classes
    config.check_classes(len(classes))
    check_word_vectors(config, classes)
    progress(f"checking {sum(len(s) for s in splits)} images in {config.data_dir}")
    for split in splits:
        verify_images(split.paths)
    index = ""
    if index_root is not None:
        from trainables.training.split_index import index_path, write_index

        index = str(write_index(index_path(index_root, config), *splits))
    return config, classes, index


def data_folder(config: TrialConfig) -> Path:
    """The absolute data_dir (~ expanded) of a data set that is not the synthetic one, checked by the readers'
    own rule (it must be a folder) before any reader runs."""
    return checked_folder(Path(config.data_dir).expanduser(), f"dataset={config.dataset}")


def check_weights(config: TrialConfig) -> Path:
    """The absolute pretrained_path, after checking that its weights load into the backbone."""
    from trainables.backbones import create_backbone

    path = Path(config.pretrained_path).expanduser().absolute()
    try:
        create_backbone(config.backbone, pretrained_path=str(path))
    except ValueError as error:
        raise ConfigError(f"{error}: pass a weights file saved from timm's {config.backbone} "
                          "(.safetensors or a state dict)") from None
    return path


def fetch_pretrained(config: TrialConfig, progress: Callable[[str], None]) -> None:
    """Download timm's weights on the driver first: an unreachable hub is one clear line here, not a
    traceback in every Ray worker (and on one machine the workers then read the local cache)."""
    from trainables.backbones import create_backbone

    progress(f"fetching timm's pretrained weights of {config.backbone}")
    try:
        create_backbone(config.backbone, pretrained=True)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def prepare_plane(config: TrialConfig, space: str, progress: Callable[[str], None],
                  index_root: Path) -> tuple[TrialConfig, list[str], str]:
    """prepare_data for a study over `space`: with a size plane, every backbone it lists is checked (and its
    weights fetched when pretrained), and the embedded set is drawn once at the plane's largest resolution,
    so that every resolution sees the same images (each trial resizes them to its own image_size)."""
    from search_spaces import get_space

    plane = get_space(space).plane
    if not plane:
        return prepare_data(config, progress, index_root)
    backbones = [name for name in plane.get("backbone", ()) if name != config.backbone]
    if backbones and config.pretrained_path:
        raise ConfigError(f"--space {space} trains {len(backbones) + 1} backbones and pretrained_path holds the weights "
                          "of one: use pretrained=true (timm's weights) or a space without a backbone list")
    for name in backbones:
        point = replace(config, backbone=name)
        point.check_backbone()
        if config.pretrained:
            fetch_pretrained(point, progress)
    drawn = replace(config, image_size=max(plane.get("image_size", (config.image_size,))))
    prepared, classes, index = prepare_data(drawn, progress, index_root)
    return replace(prepared, image_size=config.image_size), classes, index
