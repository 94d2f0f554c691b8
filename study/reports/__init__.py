"""A study's answer: the Pareto front, the accuracy-versus-size plane, the printed front table, the
report (CSV, PNG, HTML) and the export of kept models to MLflow."""
