"""What keeps a sweep's cost per trial flat, tested without a long sweep: the live-trial scheduler, the
sampler rule, the per-level Tune state period, the searcher's handover of Optuna names to the trial, and a
report page of 20,000 screened configurations (bench/sweep_scale.py measures the whole at 10,000)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from ray.tune.experiment import Trial

from study.levels import tuner
from study.levels.live_fifo import LiveFIFOScheduler
from study.reports.report_html import SCREENED_ROWS, table_rows, write_html
from trainables.trial.mlflow_runs import search_tags

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from sweep_watch import JournalCounter  # noqa: E402


class _Controller:
    """What the scheduler may look at: the live trials. Walking every trial is what it must not do."""

    def __init__(self, live: set[Trial]) -> None:
        self.live = live

    def get_live_trials(self) -> set[Trial]:
        return self.live

    def get_trials(self):
        raise AssertionError("walked every trial of the run")


def test_the_scheduler_runs_live_trials_first_in_first_out_without_walking_finished_ones() -> None:
    scheduler = LiveFIFOScheduler()
    trials = [Trial("f", stub=True, trial_id=f"t{i}") for i in range(4)]
    controller = _Controller(set())
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
        controller.live.add(trial)
    trials[0].set_status(Trial.RUNNING)
    trials[2].set_status(Trial.PAUSED)
    assert scheduler.choose_trial_to_run(controller) is trials[1]  # the oldest pending one
    trials[1].set_status(Trial.RUNNING)
    assert scheduler.choose_trial_to_run(controller) is trials[3]  # pending before paused
    trials[3].set_status(Trial.RUNNING)
    assert scheduler.choose_trial_to_run(controller) is trials[2]
    for trial in trials:  # they end: nothing to run, and the scheduler keeps nothing of them
        trial.set_status(Trial.TERMINATED)
        scheduler.on_trial_complete(controller, trial, {})
    controller.live.clear()
    assert scheduler.choose_trial_to_run(controller) is None and not scheduler._order


def test_screening_samples_at_random_above_the_tpe_limit_unless_asked() -> None:
    assert tuner.sampler_name("screen", tuner.TPE_MAX_TRIALS) == "tpe"
    assert tuner.sampler_name("screen", tuner.TPE_MAX_TRIALS + 1) == "random"
    assert tuner.sampler_name("screen", 10_000, "tpe") == "tpe"
    assert tuner.sampler_name("screen", 10, "random") == "random"
    assert tuner.sampler_name("finetune", 10_000, "random") == "tpe"  # fine-tuning: few trials, always TPE
    assert isinstance(tuner.sampler("random", 0), optuna.samplers.RandomSampler)
    assert isinstance(tuner.sampler("tpe", 0), optuna.samplers.TPESampler)


def test_tpe_arguments_whose_defaults_changed_in_optuna_5_are_set_explicitly() -> None:
    """Optuna 4 -> 5 turned constant_liar on and made multivariate automatic: the study sets both, so the
    installed version does not choose the search (the attributes are where the sampler keeps them in both)."""
    multi, single = tuner.sampler("tpe", 0, multi_objective=True), tuner.sampler("tpe", 0, multi_objective=False)
    assert multi._constant_liar is True and single._constant_liar is True
    assert multi._multivariate is False and single._multivariate is True


def test_tune_state_period_per_level_and_the_users_value_wins(monkeypatch) -> None:
    monkeypatch.delenv("TUNE_GLOBAL_CHECKPOINT_S", raising=False)
    monkeypatch.setattr(tuner, "USER_CHECKPOINT_S", None)
    tuner.set_checkpoint_period("finetune")
    assert float(tuner.os.environ["TUNE_GLOBAL_CHECKPOINT_S"]) == 1  # a killed driver loses no fine-tuning trial
    tuner.set_checkpoint_period("screen")
    assert float(tuner.os.environ["TUNE_GLOBAL_CHECKPOINT_S"]) >= 1e6  # never rewritten during the run
    monkeypatch.setattr(tuner, "USER_CHECKPOINT_S", "30")
    tuner.set_checkpoint_period("screen")
    assert tuner.os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "30"


def test_search_tags_split_the_searchers_names_from_the_config() -> None:
    values, tags = search_tags({"tau": 0.3, "optuna_study": "s:screen", "optuna_trial": 7})
    assert values == {"tau": 0.3} and tags == {"optuna_study": "s:screen", "optuna_trial": "7"}
    assert search_tags({"tau": 0.3}) == ({"tau": 0.3}, {})


def _sweep_table(screened: int, tuned: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = screened + tuned
    table = pd.DataFrame({
        "trial_id": [f"{i:08x}" for i in range(n)], "run_id": [f"r{i}" for i in range(n)],
        "level": ["screen"] * screened + ["finetune"] * tuned, "stopped_early": False,
        "mAP": rng.uniform(40, 60, n), "direct_mAP": 55.0,
        "n_params": pd.array([375_307] * n, dtype="Int64"), "n_params_inference": pd.array([375_280] * n, dtype="Int64"),
        "flops": 1e8, "latency_ms": 1.0, "embedding": rng.choice(["fi", "fpca", "word"], n),
        "tau": rng.uniform(0, 1, n), "p": rng.uniform(0, 1, n), "pca_dim": pd.array([8] * n, dtype="Int64"),
        "gcn_lr": rng.uniform(1e-4, 1e-2, n)})
    table["pareto"] = False
    table.loc[n - 1, "pareto"] = True
    return table


def test_the_table_lists_every_fine_tuned_trial_and_the_best_screened() -> None:
    table = _sweep_table(5_000, 8)
    shown, heading = table_rows(table)
    screened = shown[shown["level"] == "screen"]
    assert len(screened) == SCREENED_ROWS and (shown["level"] == "finetune").sum() == 8
    assert screened["mAP"].min() >= table.loc[table["level"] == "screen", "mAP"].nlargest(SCREENED_ROWS).min()
    assert "5000 screened" in heading and "trials.csv" in heading
    small = _sweep_table(SCREENED_ROWS, 3)
    assert len(table_rows(small)[0]) == len(small)  # a small study lists every trial


def test_a_report_page_of_20000_screened_configurations_stays_small(tmp_path) -> None:
    table = _sweep_table(20_000, 8)
    baselines = pd.DataFrame({"run_id": ["b"], "backbone": ["test_resnet"], "image_size": [64.0], "level": ["finetune"],
                              "mAP": [55.0], "n_params": pd.array([375_307], dtype="Int64"),
                              "n_params_inference": pd.array([375_307], dtype="Int64"), "flops": [1e8],
                              "latency_ms": [1.0], "images_per_s": [100.0]})
    page = tmp_path / "pareto.html"
    write_html(table, table[table["pareto"]], baselines, ["embedding", "tau", "p", "pca_dim", "gcn_lr"], page,
               "sweep", "headline", "n_params_inference", run_link=lambda run_id: f"http://mlflow/{run_id}")
    text = page.read_text()
    assert page.stat().st_size < 5 * 2**20
    trials_table = re.search(r'<table id="trials-table">.*?</table>', text, re.S).group(0)
    assert trials_table.count("<tr") == 1 + 8 + SCREENED_ROWS  # header, every fine-tuned trial, the best screened
    assert '<a href="trials.csv">trials.csv</a>' in text
    assert '"type":"box"' in text and '"boxpoints":false' in text  # one deployed size: a box per embedding, no points


def test_the_bench_counts_completed_screening_trials_in_a_journal(tmp_path) -> None:
    from optuna.storages.journal import JournalFileBackend

    path = tmp_path / "optuna.journal"
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    screen = optuna.create_study(study_name="s:screen", storage=storage)
    tuned = optuna.create_study(study_name="s:finetune", storage=storage)
    counter = JournalCounter(path)
    for i in range(5):
        screen.tell(screen.ask(), float(i))
    screen.ask()  # running
    pruned = screen.ask()
    screen.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    assert counter.poll() == 5 and counter.created == 7
    tuned.tell(tuned.ask(), 1.0)  # another level's trial
    screen.tell(screen.ask(), 9.0)
    assert counter.poll() == 6 and counter.created == 8


def test_the_sweep_journal_pops_enqueued_trials_as_optunas_does(tmp_path) -> None:
    """SweepJournalStorage answers ask()'s look for enqueued trials from a watermark; the trials it pops,
    in order, are the ones Optuna's own journal would pop (a real journal file, two processes' worth)."""
    from optuna.storages.journal import JournalFileBackend

    from study.levels.search import SweepJournalStorage

    path = str(tmp_path / "optuna.journal")
    study = optuna.create_study(study_name="s:screen", storage=SweepJournalStorage(JournalFileBackend(path)),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"tau": 0.25})
    study.enqueue_trial({"tau": 0.75})
    popped = []
    for i in range(30):
        if i == 20:  # enqueued by another process (its own storage object) after many trials
            other = optuna.load_study(study_name="s:screen", storage=optuna.storages.JournalStorage(JournalFileBackend(path)))
            other.enqueue_trial({"tau": 0.5})
        trial = study.ask()
        popped.append(trial.suggest_float("tau", 0.0, 1.0))
        study.tell(trial, 1.0)
    assert popped[:2] == [0.25, 0.75] and popped[20] == 0.5
    assert len(set(popped)) == 30  # the rest sampled, none popped twice
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE


def test_a_driver_keeps_one_journal_storage_and_sees_other_writers(tmp_path):
    """Each Tune run of a screening builds a new searcher over the same journal: it gets the driver's one
    storage (no replay of the whole sweep per run), which still sees what another process wrote."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from study.levels.search import journal_storage

    path = str(tmp_path / "optuna.journal")
    first = optuna.create_study(study_name="s:screen", storage=journal_storage(path), sampler=optuna.samplers.RandomSampler(0))
    first.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    other = optuna.load_study(study_name="s:screen", storage=optuna.storages.JournalStorage(JournalFileBackend(path)))
    other.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)  # as another process would
    again = optuna.load_study(study_name="s:screen", storage=journal_storage(path))
    assert journal_storage(path) is journal_storage(path) and len(again.get_trials(deepcopy=False)) == 5
    assert [t.number for t in again.get_trials(deepcopy=False)] == list(range(5))
