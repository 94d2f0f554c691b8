"""`imlgcn train`: validate, prepare the data, then run the three stages on Ray Train workers.

Everything that can be checked on the driver (config, data folder, annotation files, images, word
vectors) is checked before Ray starts and before any MLflow run exists, so bad input costs seconds
and leaves nothing half-written.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from trainables.config import ConfigError, TrialConfig
from trainables.data import SPLITS, DataError, read_split, verify_images
from trainables.label_graph import word_embeddings
from trainables.synthetic import ensure_synthetic
from trainables.train_stage import word_embeddings_path
from study.tracking import FINAL_KEYS, experiment_id, resolve_tracking_uri

Progress = Callable[[str], None]


def prepare_data(config: TrialConfig, progress: Progress) -> tuple[TrialConfig, tuple[str, ...]]:
    """Resolve data_dir (generating the synthetic set on first use), read and check both splits."""
    config.check_data_dir()
    if config.dataset not in SPLITS:
        raise DataError(f"dataset={config.dataset} is not supported yet: use one of {', '.join(SPLITS)}")
    if config.pretrained_path:
        config = replace(config, pretrained_path=str(check_weights(config)))
    elif config.pretrained:
        fetch_pretrained(config, progress)
    if config.dataset == "synthetic":
        config.check_classes(config.synthetic_classes)  # before spending a minute drawing images
        path = ensure_synthetic(config.data_dir, config.synthetic_classes, config.synthetic_train_images,
                                config.synthetic_val_images, config.image_size, config.seed, progress=progress)
    else:
        path = Path(config.data_dir).expanduser().absolute()
        if not path.is_dir():
            raise DataError(f"data folder {path} does not exist: pass the data set's root with --set data_dir=PATH")
    config = replace(config, data_dir=str(Path(path).absolute()))
    splits = [read_split(config.dataset, config.data_dir, name) for name in SPLITS[config.dataset]]
    classes = splits[0].classes
    config.check_classes(len(classes))
    if config.embedding == "word":
        try:
            word_embeddings(word_embeddings_path(config), list(classes))
        except ValueError as error:
            raise ConfigError(str(error)) from None
    progress(f"checking {sum(len(s) for s in splits)} images in {config.data_dir}")
    for split in splits:
        verify_images(split.paths)
    return config, classes


def check_weights(config: TrialConfig) -> Path:
    """The absolute pretrained_path, after checking that its weights load into the backbone."""
    from trainables.model import create_backbone

    path = Path(config.pretrained_path).expanduser().absolute()
    try:
        create_backbone(config.backbone, pretrained_path=str(path))
    except ValueError as error:
        raise ConfigError(f"{error}: pass a weights file saved from timm's {config.backbone} "
                          "(.safetensors or a state dict)") from None
    return path


def fetch_pretrained(config: TrialConfig, progress: Progress) -> None:
    """Download timm's weights on the driver first: an unreachable hub is one clear line here, not a
    traceback in every Ray worker (and on one machine the workers then read the local cache)."""
    from trainables.model import create_backbone

    progress(f"fetching timm's pretrained weights of {config.backbone}")
    try:
        create_backbone(config.backbone, pretrained=True)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def run_train(config: TrialConfig, tracking_uri: str | None, address: str | None, storage: str,
              experiment: str, progress: Progress) -> dict:
    """Run pretrain -> embed -> train on Ray Train; log to MLflow; return the final metrics.

    Data, weights, Ray and its GPUs are checked before the MLflow run exists, so bad input leaves no run.
    """
    from study.ray_session import check_gpus, start_ray, stop_ray

    from study.preflight import preflight

    began = time.time()
    uri = resolve_tracking_uri(tracking_uri)
    preflight(uri, address, storage)
    config, classes = prepare_data(config, progress)
    progress(start_ray(address))
    try:
        check_gpus(config.use_gpu, config.num_workers)
        return _tracked_fit(config, classes, uri, experiment, Path(storage).absolute(), began, progress)
    finally:
        stop_ray()


def _tracked_fit(config: TrialConfig, classes: tuple[str, ...], uri: str, experiment: str, storage: Path,
                 began: float, progress: Progress) -> dict:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from study.preflight import redact
    from study.ray_session import cluster_cpus

    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(experiment_id(client, experiment, uri), tags={"stage": "train"},
                            run_name=f"{config.embedding}-{config.backbone}")
    run_id = run.info.run_id
    progress(f"MLflow run {run_id} in experiment {experiment!r} at {redact(uri)}")
    model_dir = storage / "models" / run_id
    try:
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in config.to_dict().items()])
        cpus = config.cpus_per_worker or max(1, cluster_cpus() // config.num_workers)
        progress(f"training on {config.num_workers} Ray Train worker(s) x {cpus} CPU"
                 f"{' + 1 GPU' if config.use_gpu else ''}")
        metrics = fit_in_workers(config, uri, run_id, storage, f"train-{run_id}", cpus, model_dir=str(model_dir))
        final = {k: float(metrics[k]) for k in FINAL_KEYS}
        final["direct_mAP"] = float(metrics["direct_mAP"])
        final["wall_time_s"] = round(time.time() - began, 1)
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, config.epochs) for k, v in final.items()])
        client.log_artifacts(run_id, str(model_dir), "model")
        client.set_terminated(run_id, "FINISHED")
    except KeyboardInterrupt:
        client.set_terminated(run_id, "KILLED")
        raise
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    progress(f"model saved to {model_dir} and logged as runs:/{run_id}/model "
             f"(try `imlgcn predict --model runs:/{run_id}/model IMAGE`)")
    return {**final, "n_params": int(final["n_params"]), "num_classes": len(classes), "run_id": run_id,
            "model": str(model_dir)}


def fit_in_workers(config: TrialConfig, uri: str, run_id: str, storage: Path, name: str, cpus: int,
                   stages: str = "all", model_dir: str | None = None) -> dict:
    """Run the stages on `config.num_workers` Ray Train workers; Ray must already be initialised."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from trainables.train_loop import train_loop_per_worker

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"trial": config.to_dict(), "cache_dir": str(storage / "stage1"),
                           "tracking_uri": uri, "run_id": run_id, "stages": stages,
                           "model_dir": model_dir},
        scaling_config=ScalingConfig(num_workers=config.num_workers, use_gpu=config.use_gpu,
                                     resources_per_worker={"CPU": cpus}),
        run_config=RunConfig(name=name, storage_path=str(storage),
                             failure_config=FailureConfig(max_failures=2), logging_config=LoggingConfig(log_level="WARNING"),
                             checkpoint_config=CheckpointConfig(num_to_keep=1)),
    )
    return trainer.fit().metrics
