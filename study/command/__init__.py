"""The `imlgcn` command: the parser and its subcommands (train, params, predict); the only place that prints
results and exits."""
