"""The driver side: see README "How it works" for its rooms.

MOVED: modules that moved into rooms on 2026-12-07, by their old dotted path; importable under it still, so
that a study whose Tune state was saved before the move resumes (trainables/moved.py).
"""

from trainables.moved import alias

MOVED = {
    "study.config": "study.driver.config",
    "study.console": "study.driver.console",
    "study.failures": "study.driver.failures",
    "study.preflight": "study.driver.preflight",
    "study.mlflow_store": "study.driver.mlflow_store",
    "study.ray_session": "study.driver.ray_session",
    "study.cluster_versions": "study.driver.cluster_versions",
    "study.private_members": "study.driver.private_members",
    "study.record": "study.driver.record",
    "study.trainings": "study.driver.trainings",
    "study.report": "study.reports.report",
    "study.report_html": "study.reports.report_html",
    "study.report_plots": "study.reports.report_plots",
    "study.front_table": "study.reports.front_table",
    "study.pareto": "study.reports.pareto",
    "study.plane": "study.reports.plane",
    "study.export": "study.reports.export",
    "study.lifecycle": "study.levels.lifecycle",
    "study.tuner": "study.levels.tuner",
    "study.search": "study.levels.search",
    "study.moasha": "study.levels.moasha",
    "study.live_fifo": "study.levels.live_fifo",
    "study.callbacks": "study.levels.callbacks",
    "study.references": "study.levels.references",
    "study.compare": "study.comparison.compare",
    "study.compare_sizes": "study.comparison.compare_sizes",
    "study.arms": "study.comparison.arms",
    "study.paired": "study.comparison.paired",
    "study.cli": "study.command.cli",
    "study.train_command": "study.command.train_command",
    "study.params_command": "study.command.params_command",
    "study.predict": "study.command.predict",
}
alias(MOVED)
