"""`imlgcn predict`: labels of images from a saved model (a folder, or an MLflow models:/ or runs:/ URI).

The model folder is downloaded from MLflow when given a URI, then read as data (safetensors + JSON):
no code from the model is executed.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from study.driver.preflight import redact
from trainables.config import ConfigError
from trainables.data.images import verify_images
from trainables.data.labelled_images import DataError


MODEL_URI_PREFIXES = ("models:/", "runs:/")  # what predict fetches through MLflow's tracking store


def resolve_model(uri: str, tracking_uri: str | None, scratch: str) -> Path:
    """A local model folder for `uri`: the folder itself, or the artifacts downloaded from MLflow into
    `scratch` (a folder the caller removes once the model is loaded)."""
    local = Path(urlsplit(uri).path if uri.startswith("file://") else uri).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise ConfigError(f"--model {uri} is a file, not a model folder: pass the folder that holds it (with "
                          "imlgcn.json and model.safetensors), models:/NAME/VERSION or runs:/RUN_ID/model")
    scheme = None if uri.startswith("file:") else re.match(r"([A-Za-z][A-Za-z0-9+.-]*):/", uri)
    if scheme and not uri.startswith(MODEL_URI_PREFIXES):
        raise ConfigError(f"--model {redact(uri)}: predict does not fetch {scheme.group(1)}: URIs (object stores "
                          "and the like) yet: download the model folder and pass its path, or pass "
                          "models:/NAME/VERSION or runs:/RUN_ID/model with the --tracking-uri that holds it")
    if not scheme:
        raise ConfigError(f"--model {uri}: no such folder; pass a model folder, models:/NAME/VERSION "
                          "or runs:/RUN_ID/model")
    import os

    from mlflow.exceptions import MlflowException

    from study.driver.mlflow_store import resolve_tracking_uri
    from study.driver.preflight import check_server, check_sqlite_file
    from trainables.trial.mlflow_runs import store

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # stderr is for our lines
    uri_of_store = resolve_tracking_uri(tracking_uri)
    check_sqlite_file(uri_of_store)
    if uri_of_store.startswith("sqlite:///") and not Path(uri_of_store[len("sqlite:///"):]).is_file():  # do not create one
        raise ConfigError(f"--model {uri}: there is no MLflow store at {uri_of_store[len('sqlite:///'):]}: pass the "
                          "--tracking-uri that holds the model")
    check_server(uri_of_store)  # seconds, not MLflow's minutes of retries, when the server is down
    try:
        path = store(uri_of_store).download(uri, scratch)
    except (MlflowException, OSError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"--model {uri} cannot be fetched from {redact(uri_of_store)} ({first}): "
                          "check the name/version with the MLflow UI, or pass --tracking-uri") from None
    found = [p for p in (path, path / "model") if (p / "imlgcn.json").is_file()]
    if not found:
        raise ConfigError(f"--model {uri} holds no imlgcn model (no imlgcn.json): export it with "
                          "`imlgcn study export` or use the `model` artifact of an `imlgcn train` run")
    return found[0]


def predict(model_uri: str, images: list[str], threshold: float, device: str | None,
            tracking_uri: str | None, batch_size: int = 16) -> list[dict[str, Any]]:
    """One dict per image: its path and the labels with probability >= threshold, most probable first."""
    import torch

    from trainables.models.model import fold
    from trainables.models.saved_model import load_model, predict_probabilities

    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"--threshold {threshold} is out of range: use a probability in [0, 1]")
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: use at least 1")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device} is not a torch device: use cpu, cuda or cuda:N") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA GPU is visible here; use --device cpu")
    folders = [p for p in images if Path(p).is_dir()]
    if folders:
        raise ConfigError(f"IMAGE {folders[0]} is a folder, not an image: pass the images in it "
                          f"(e.g. {Path(folders[0]) / '*.jpg'})")
    missing = [p for p in images if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"image {missing[0]} does not exist ({len(missing)} of {len(images)} missing)")
    try:
        verify_images(images)
    except DataError as error:  # the reader's wording speaks of data sets; here it is the user's file
        bad = str(error).split(" cannot be read", 1)[0].removeprefix("image ")
        raise ConfigError(f"{bad} is not an image this tool can read: pass JPEG, PNG or other image files") from None
    with tempfile.TemporaryDirectory(prefix="imlgcn-model-") as scratch:
        folder = resolve_model(model_uri, tracking_uri, scratch)
        try:
            model, meta = load_model(folder, device)
        except (ValueError, KeyError) as error:
            raise ConfigError(f"model {model_uri} cannot be loaded: {error}") from None
    model = fold(model)  # IML-GCN's constant classifiers as a linear head: the same scores, less work
    scores = predict_probabilities(model, meta, images, batch_size, device)
    classes = meta["classes"]
    results = []
    for path, row in zip(images, scores):
        order = [int(c) for c in row.argsort()[::-1] if row[c] >= threshold]
        results.append({"image": path, "labels": [{"label": classes[c], "probability": float(row[c])}
                                                  for c in order]})
    return results


def format_predictions(results: list[dict[str, Any]]) -> str:
    """A plain table: one line per image, `label (probability)` pairs, '-' when none passes the threshold."""
    width = max((len(r["image"]) for r in results), default=5)
    lines = []
    for r in results:
        labels = ", ".join(f"{x['label']} ({x['probability']:.2f})" for x in r["labels"]) or "-"
        lines.append(f"{r['image']:<{width}}  {labels}")
    return "\n".join(lines)
