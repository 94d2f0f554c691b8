"""What every command does on the driver around Ray: presets and --set, preflight checks, the MLflow store
URI, starting or joining Ray, one version set per cluster, the study record, and un-searched trainings."""
