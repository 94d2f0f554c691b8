"""What runs under Ray: the Tune trial functions and Ray Train workers, the RunContext from the driver, the
MLflow runs a trial logs, its run markers, and the MLflow store's schema guard."""
