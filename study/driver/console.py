"""What the `imlgcn` command shows: our own lines, quiet libraries, plain text when not on a terminal.

By default the libraries speak only when something is wrong: MLflow's database INFO lines, Optuna's
"study created" line, Ray's start-up warnings, Tune's experiment banner (and its TensorBoard hint, a
tool this project does not use) and the Ray workers' own lines during a study are off; `--verbose`
brings them back. Colour codes are written only to a terminal.
"""

from __future__ import annotations

import logging
import os
import sys

VERBOSE_ENV = "IMLGCN_VERBOSE"


def configure(verbose: bool) -> None:
    """Set up the process (and, through the environment, the Ray processes it starts) before any
    library is imported."""
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # never merge two workers' lines into one "[repeated 2x]"
    if not sys.stderr.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    if not verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no boxed banner, no TensorBoard hint
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no TensorBoard/CSV/JSON loggers
        logging.getLogger("optuna").setLevel(logging.WARNING)
        for name in ("ray", "ray.tune", "ray.train"):
            logging.getLogger(name).setLevel(logging.ERROR)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def quiet_libraries() -> None:
    """Optuna configures its own handler on import: lower it after the import (no-op with --verbose)."""
    if not verbose():
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)


def colour(text: str, code: str) -> str:
    """ANSI colour on a terminal, the plain text elsewhere (files, pipes, CI logs)."""
    return f"\033[{code}m{text}\033[0m" if sys.stderr.isatty() else text
