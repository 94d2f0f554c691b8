"""The console tells the study's state: the status lines' "best" is the study's best at that level across
Tune runs (a screening in chunks, a resume, an extend), never "-inf" or an empty trial id; the line on how
well screening predicted fine-tuning gives a correlation only over at least 3 pairs."""

import math
import types

import pytest

from study.command.cli import agreement_line
from study.levels import callbacks
from study.levels.callbacks import TrialProgress
from study.levels.study_best import NO_RESULT, StudyBest, best_text, better
from tests.mlflow_template import migrated_db
from trainables.trial.mlflow_runs import store
from trainables.trial.run_context import screened_runs_dir


def _trial(trial_id: str, m_ap: float, epoch: int = 1) -> types.SimpleNamespace:
    return types.SimpleNamespace(trial_id=trial_id, last_result={"mAP": m_ap, "epoch": epoch, "direct_mAP": 50.0},
                                 config={}, status="TERMINATED")


@pytest.fixture()
def runs(tmp_path):
    migrated_db(tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    return uri, store(uri), store(uri).experiment_id("s")


def _tune_run(uri, runs_dir, level, start, total, best_of, results, record=None) -> None:
    """One Tune run as Tune drives its callback: setup, each trial's end (after the trial recorded its
    run, as a screened trial does), then a status line."""
    progress = TrialProgress.create(start, total, uri, runs_dir, level, (), 1, best_of)
    progress.setup(stop=None, num_samples=len(results), total_num_samples=len(results))
    for trial_id, m_ap, *epoch in results:
        if record is not None:
            record(trial_id, m_ap)
        progress.on_trial_complete(0, [], _trial(trial_id, m_ap, *epoch))
    progress.on_step_end(0, [_trial(t, m) for t, m, *_ in results])


def test_a_screening_in_two_tune_runs_names_the_first_runs_best_on_its_last_lines(runs, tmp_path, monkeypatch,
                                                                                     capsys):
    uri, log, experiment = runs
    monkeypatch.setattr(callbacks, "STATUS_EVERY_S", 0.0)
    runs_dir = str(tmp_path / "mlflow_runs")
    folder = screened_runs_dir(runs_dir, "screen")  # every chunk of the planned run `screen` marks here
    best_of = StudyBest(uri, experiment, "screen", {"screen": folder})

    def record(trial_id, m_ap):  # what screen_trial writes when its trial ends
        log.record_trial(folder, trial_id, experiment, "parent", {"tau": 0.3}, {"mAP": m_ap},
                         {"level": "screen", "tune_run": "screen"}, 0)

    _tune_run(uri, runs_dir, "screen", 0, 6, best_of, [("a1", 50.0), ("a2", 60.65), ("a3", 55.0)], record)
    first = capsys.readouterr().err
    _tune_run(uri, runs_dir, "screen", 3, 6, best_of, [("b1", 58.0), ("b2", 60.2), ("b3", 59.0)], record)
    second = capsys.readouterr().err
    lines = second.strip().splitlines()
    assert "screened 6/6 head configurations" in lines[-2] and "best mAP 60.65 (trial a2)" in lines[-2]
    assert "[screen 6/6]" in lines[-1] and lines[-1].endswith("| best mAP 60.65 (trial a2)")
    assert "best mAP 60.65 (trial a2)" in first.strip().splitlines()[-1]
    assert "-inf" not in first + second and "(trial )" not in first + second
    assert best_of.read() == (60.65, "a2")  # what the next run, a resume or an extend starts from


def test_fine_tuning_resumed_starts_from_the_best_full_trial_before_it(runs, tmp_path, monkeypatch, capsys):
    """The best fine-tuned trial is one that ran all its epochs (the report's front): a higher mAP of a
    trial a scheduler stopped is not it; a resumed run's line names the one the first run found."""
    uri, log, experiment = runs
    monkeypatch.setattr(callbacks, "STATUS_EVERY_S", 0.0)
    for trial_id, m_ap, stopped in (("f1", 61.0, "false"), ("f2", 62.0, "true"), ("f3", 59.0, "false")):
        run_id = log.create(experiment, trial_id, {"stage": "trial", "trial_id": trial_id, "level": "finetune"})
        log.finish(run_id, {"mAP": m_ap}, step=3, tags={"stopped_early": stopped})
    best_of = StudyBest(uri, experiment, "finetune")
    assert best_of.read() == (61.0, "f1")
    _tune_run(uri, str(tmp_path / "mlflow_runs"), "finetune", 3, 5, best_of, [("f4", 60.0, 1), ("f5", 63.0, 0)])
    status = capsys.readouterr().err.strip().splitlines()[-1]
    assert status.endswith("| best mAP 61.00 (trial f1)")  # f5 stopped after epoch 0 of 1


def test_before_any_result_the_best_is_said_in_words():
    assert best_text(None) == NO_RESULT == "no result yet"
    assert better(None, math.nan, "t") is None and better((1.0, "a"), 1.0, "b") == (1.0, "a")
    assert best_text(better(None, 60.648, "x")) == "best mAP 60.65 (trial x)"


def test_the_rank_correlation_line_needs_three_pairs():
    one = agreement_line(math.nan, 1)
    assert one == ("too few promoted configurations ran all their epochs (1) to say how well screening "
                   "predicted fine-tuning: at least 3 are needed")
    assert "nan" not in agreement_line(math.nan, 2) and "nan" not in agreement_line(math.nan, 4)
    assert "all the same" in agreement_line(math.nan, 4)
    assert agreement_line(0.5, 3) == ("screening predicted fine-tuning with Spearman's rank correlation 0.50 "
                                      "over the 3 promoted configurations that ran all their epochs")
