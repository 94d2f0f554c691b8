"""The `imlgcn` command's handlers: the only place that prints results and exits. Its command line
(commands, options, help) is study/command/parser.py.

Errors caused by input (config, data, paths) end as one line on stderr and exit code 2; progress goes
to stderr, so stdout carries only the result (one JSON line where a command has one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from study.command.parser import DEFAULT_PRESETS, build_parser
from trainables.config import ConfigError, TrialConfig
from trainables.data.datasets import get_dataset


def progress(text: str) -> None:
    print(f"imlgcn: {text}", file=sys.stderr, flush=True)


def _trial_config(args: argparse.Namespace, default_preset: str | None = None) -> TrialConfig:
    """The config of a command that trains: preset, YAML file and --set pairs; its notes printed."""
    from study.driver.config import load_trial_config

    config = load_trial_config(args.preset or default_preset, args.config, args.assignments)
    for note in config.notes():
        progress(f"note: {note}")
    return config


def cmd_study(args: argparse.Namespace) -> dict | None:
    from study.levels import lifecycle
    from study.levels.create import create_study
    from study.driver.record import list_records, load_record

    if args.study_command == "list":
        records = list_records(args.storage)
        if not records:
            print(f"no studies in {Path(args.storage).absolute()}: start one with `imlgcn study run --name NAME`")
            return None
        print("study\tstatus\ttrials\tspace/objective/size")
        for record in records:
            print(f"{record.name}\t{record.status}\t{record.num_samples} fine-tuned, {record.screen} screened\t"
                  f"{record.space}/{record.objective}/{record.size}")
        return None
    if args.study_command == "export":
        from study.reports.export import export_models

        record = load_record(args.storage, args.name)
        for row in export_models(record, _reachable_uri(args, record), args.trial, args.front, progress):
            print(json.dumps(row))
        return None
    if args.study_command == "run":
        config = _trial_config(args, DEFAULT_PRESETS["study run"])
        record = create_study(args.name, config, args.space, args.objective, args.size, args.num_samples,
                              args.max_concurrent, args.storage, args.tracking_uri, progress, args.address,
                              args.screen, args.eta, args.sampler)
        lifecycle.run_trials(record, args.address, progress)
    elif args.study_command == "resume":
        record = lifecycle.resume_study(args.name, args.storage, args.address, progress, args.tracking_uri)
    elif args.study_command == "extend":
        record = lifecycle.extend_study(args.name, args.storage, args.num_samples, args.address, progress,
                                        args.tracking_uri, args.screen, args.sampler)
    else:
        record = load_record(args.storage, args.name)
        _reachable_uri(args, record)
    return _report(args, record)


def _study_uri(args: argparse.Namespace, record) -> str:
    """--tracking-uri when given (e.g. the server's address seen from this machine), else the study's own."""
    from study.driver.mlflow_store import resolve_tracking_uri

    given = getattr(args, "tracking_uri", None)
    return resolve_tracking_uri(given) if given else record.tracking_uri


def _reachable_uri(args: argparse.Namespace, record) -> str:
    """The study's store, after a reachability check with a deadline (run, resume and extend check it as
    they start): a server that is down is one line in seconds, not minutes of MLflow's retries."""
    from study.driver.preflight import check_server

    uri = _study_uri(args, record)
    check_server(uri)
    return uri


def _report(args: argparse.Namespace, record) -> None:
    from study.reports.report import write_report

    out = getattr(args, "out", None) or str(record.report_dir)
    files = write_report(_study_uri(args, record), record.name, out, record.size_metric, record.screened_markers(),
                         _size_tolerance(args))
    progress(f"report: {files['html']} (also {Path(files['csv']).name}, {Path(files['png']).name} and "
             f"{Path(files['txt']).name} there, and on the study's MLflow parent run)")
    if files["screened"]:
        progress(agreement_line(*files["agreement"]))
    print(files["text"])
    _open_hints(args, record)
    return None


def agreement_line(rho: float, pairs: int) -> str:
    """How well screening predicted fine-tuning, in words: Spearman's rank correlation over at least
    AGREEMENT_PAIRS promoted configurations that ran all their epochs, else why there is none."""
    from study.reports.report import AGREEMENT_PAIRS

    if pairs < AGREEMENT_PAIRS:
        return (f"too few promoted configurations ran all their epochs ({pairs}) to say how well screening "
                f"predicted fine-tuning: at least {AGREEMENT_PAIRS} are needed")
    if rho != rho:
        return (f"no rank correlation between screening and fine-tuning over the {pairs} promoted configurations "
                "that ran all their epochs: their screened or their fine-tuned mAPs are all the same")
    return (f"screening predicted fine-tuning with Spearman's rank correlation {rho:.2f} over the {pairs} "
            "promoted configurations that ran all their epochs")


def _size_tolerance(args: argparse.Namespace) -> float:
    """--size-tolerance, checked: sizes within this fraction of the larger are the same size."""
    from study.reports.ties import SIZE_TOLERANCE

    tolerance = getattr(args, "size_tolerance", None)
    if tolerance is None:
        return SIZE_TOLERANCE
    if not 0 <= tolerance < 1:
        raise ConfigError(f"--size-tolerance {tolerance}: give a fraction of the larger size in [0, 1), "
                          "e.g. 0.01 for 1 %")
    return tolerance


def _open_hints(args: argparse.Namespace, record) -> None:
    """The commands that open the study in MLflow's UI and in Optuna Dashboard."""
    from study.driver.preflight import redact
    from study.reports.report import UI_ADDRESS, experiment_url

    uri = _study_uri(args, record)
    if uri.startswith(("http://", "https://")):
        progress(f"MLflow: open {experiment_url(redact(uri), record.experiment_id)}")
    else:
        progress(f"MLflow: mlflow ui --backend-store-uri {uri}  then open "
                 f"{experiment_url(UI_ADDRESS, record.experiment_id)}")
    progress(f"Optuna Dashboard: optuna-dashboard {record.optuna_journal}  (pip install optuna-dashboard; "
             f"studies {record.name}:screen and {record.name}:finetune)")


def cmd_train(args: argparse.Namespace) -> dict:
    from study.command.train_command import run_train

    config = _trial_config(args, DEFAULT_PRESETS["train"])
    return run_train(config, args.tracking_uri, args.address, args.storage, args.experiment, progress)


def cmd_params(args: argparse.Namespace) -> dict:
    from study.command.params_command import params

    return params(args, progress)


def cmd_data(args: argparse.Namespace) -> dict | None:
    if args.data_command == "synth":
        from trainables.data.synthetic import generate

        path = generate(args.out, classes=args.classes, labels=args.labels, train_images=args.train_images,
                        val_images=args.val_images, image_size=args.image_size, seed=args.seed,
                        progress=progress)
        return {"out": str(path), "classes": args.classes, "labels": args.labels, "train_images": args.train_images,
                "val_images": args.val_images, "image_size": args.image_size, "seed": args.seed}
    from trainables.data.datasets import read_split
    from trainables.data.images import class_counts_json

    return class_counts_json(read_split(args.dataset, args.data_dir, args.split or get_dataset(args.dataset).train_split))


def cmd_config(args: argparse.Namespace) -> None:
    from trainables.config_keys import describe_keys

    print(describe_keys())


def cmd_compare(args: argparse.Namespace) -> None:
    from study.comparison.compare import run_compare

    config = _trial_config(args, DEFAULT_PRESETS["compare"])
    table = run_compare(args.name, config, args.arms, args.seeds, args.storage, args.tracking_uri, args.address,
                        args.max_concurrent, progress)
    print(table["text"])


def cmd_predict(args: argparse.Namespace) -> None:
    from study.command.predict import format_predictions, predict

    results = predict(args.model, args.images, args.threshold, args.device, args.tracking_uri, args.batch_size)
    print("\n".join(json.dumps(r) for r in results) if args.json else format_predictions(results))


COMMANDS = {"train": cmd_train, "params": cmd_params, "data": cmd_data, "study": cmd_study, "compare": cmd_compare,
            "predict": cmd_predict, "config": cmd_config}


def main(argv: Sequence[str] | None = None) -> int:
    import os

    from study.driver.console import configure

    args = build_parser().parse_args(argv)
    configure(args.verbose)  # before MLflow, Optuna or Ray is imported
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # its URLs may carry credentials
    from study.driver.record import StudyError, StudyInterrupted
    from trainables.data.labelled_images import DataError

    try:
        if getattr(args, "storage", None):
            from study.driver.preflight import storage_folder

            args.storage = storage_folder(args.storage)
        if getattr(args, "dry_run", False):
            from study.command.dry_run import dry_run

            print(dry_run(args, sys.argv[1:] if argv is None else list(argv)))
            result = None
        else:
            result = COMMANDS[args.command](args)
    except (ConfigError, DataError, StudyError) as error:
        print(f"imlgcn: error: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, StudyInterrupted) as error:
        print(f"imlgcn: interrupted{': ' + str(error) if str(error) else ''}", file=sys.stderr)
        return 130
    except Exception as error:  # a failure inside Ray: one line with its cause, not a wall of traceback
        from study.driver.failures import describe_failure

        message = describe_failure(error)
        if message is None:
            raise
        print(f"imlgcn: error: {message}", file=sys.stderr)
        return 1
    if result is not None:
        print(json.dumps(result))
    return 0


def entry_point() -> None:
    """The `imlgcn` command: main(), then an immediate exit once its output is flushed. By then Ray is
    stopped, every MLflow run closed and every temporary folder removed; what is left is the interpreter's
    teardown of torch, Ray, MLflow and timm, about 4 s per command on 2 cores, which would make every
    command (and every test that runs one) that much slower for nothing."""
    import logging
    import os

    try:
        code = main()
    except SystemExit as stop:  # argparse's --help and usage errors
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
        if not isinstance(stop.code, int) and stop.code is not None:
            print(stop.code, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
