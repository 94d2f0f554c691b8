"""The study's searcher (study.levels.search.StudySearch) on a real Optuna journal and a real MLflow store,
driven by hand as Tune would drive it (no Ray cluster needed)."""

import optuna
from mlflow.tracking import MlflowClient
from optuna.storages.journal import JournalFileBackend

from study.levels.search import StudySearch
from trainables.trial.mlflow_runs import search_tags


def _space(trial):
    trial.suggest_float("tau", 0.1, 0.9)
    return None


def test_a_stopped_trial_is_pruned_and_still_linked_to_its_mlflow_run(tmp_path):
    """The searcher hands each trial its Optuna study and number (the trial tags its run with them) and
    links the Optuna trial to the Tune trial and the MLflow run, also for a trial stopped early."""
    db = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=db)
    experiment = client.create_experiment("s")
    runs_dir = tmp_path / "mlflow_runs"
    runs_dir.mkdir()
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    search = StudySearch(_space, metric=["mAP", "n_params"], mode=["max", "min"], study_name="s:finetune",
                         storage=storage, seed=0, epochs=3, runs_dir=str(runs_dir),
                         metric_names=["mAP", "n_params"])
    for trial_id in ("stopped", "full"):
        config = search.suggest(trial_id)
        values, tags = search_tags(config)
        assert set(values) == {"tau"}  # what TrialConfig gets: the searched values only
        run_id = client.create_run(experiment, tags=tags).info.run_id  # as the trial function opens its run
        (runs_dir / f"{trial_id}.run").write_text(run_id)  # what the trial function writes when it starts
    # stopped by the scheduler after epoch 1: its last result has no mlflow_run_id (only the final one has)
    search.on_trial_complete("stopped", {"epoch": 1, "mAP": 40.0, "n_params": 10.0})
    search.on_trial_complete("full", {"epoch": 3, "mAP": 50.0, "n_params": 12.0,
                                      "mlflow_run_id": (runs_dir / "full.run").read_text()})

    study = optuna.load_study(study_name="s:finetune", storage=storage)
    assert study.metric_names == ["mAP", "n_params"]
    states = {t.user_attrs["tune_trial_id"]: t.state for t in study.trials}
    assert states == {"stopped": optuna.trial.TrialState.PRUNED, "full": optuna.trial.TrialState.COMPLETE}
    for trial in study.trials:
        run_id = (runs_dir / f"{trial.user_attrs['tune_trial_id']}.run").read_text()
        assert trial.user_attrs["mlflow_run_id"] == run_id
        tags = client.get_run(run_id).data.tags
        assert tags["optuna_trial"] == str(trial.number) and tags["optuna_study"] == "s:finetune"
