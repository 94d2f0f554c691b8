"""Run markers a study reads back: whole ones give their values, bare or damaged ones send the reader to
MLflow (the record) instead of ending a report or a resume in a traceback."""

from __future__ import annotations

from trainables.trial.run_markers import LoggedRun, logged_runs, write_marker


def test_whole_markers_are_read_and_bare_or_damaged_ones_are_left_to_mlflow(tmp_path):
    runs = str(tmp_path)
    logged = LoggedRun("r1", 1_700_000_000_000, {"tau": "0.3"}, {"mAP": 61.5}, {"trial_id": "t1"})
    write_marker(runs, "t1", "r1", logged)
    write_marker(runs, "t2", "r2")  # run id only (an earlier version, or a fine-tuning trial)
    damaged = {"t3": "r3\n{not json", "t4": 'r4\n{"end_time": 1}', "t5": "r5\n[1, 2]", "t6": b"r6\n\xff\xfe"}
    for trial, body in damaged.items():
        (tmp_path / f"{trial}.run").write_bytes(body if isinstance(body, bytes) else body.encode())
    found, bare = logged_runs(runs)
    assert found == [logged]
    assert sorted(bare) == ["t2", "t3", "t4", "t5", "t6"]
