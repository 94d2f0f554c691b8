"""The `imlgcn` command: the only place that prints results and exits.

Errors caused by input (config, data, paths) end as one line on stderr and exit code 2; progress goes
to stderr, so stdout carries only the result (one JSON line where a command has one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from search_spaces import SPACES
from trainables.config import ConfigError, TrialConfig
from trainables.data.datasets import DATASETS, get_dataset
from trainables.embeddings import EMBEDDINGS, WORD_DIM

DEFAULTS = TrialConfig()


SAMPLERS = ("auto", "tpe", "random")
SAMPLER_HELP = ("the screening level's Optuna sampler: auto = TPE up to 1,000 screened configurations, random search "
                "above (TPE's cost per trial grows with the trials told); fine-tuning always uses TPE")


class Parser(argparse.ArgumentParser):
    """Every option's help shows its default; sub-commands' parsers are of this class too (argparse
    builds them with the parent's class)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


DEFAULT_STUDY_SAMPLES = 8  # fine-tuning trials of a study (level 2)
DEFAULT_SCREENED = 500  # head configurations screened on cached features first (level 1)


def progress(text: str) -> None:
    print(f"imlgcn: {text}", file=sys.stderr, flush=True)


def _trial_config(args: argparse.Namespace, default_preset: str | None = None) -> TrialConfig:
    """The config of a command that trains: preset, YAML file and --set pairs; its notes printed."""
    from study.driver.config import load_trial_config

    config = load_trial_config(args.preset or default_preset, args.config, args.assignments)
    for note in config.notes():
        progress(f"note: {note}")
    return config


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", help="a shipped preset (see study/presets), e.g. demo")
    source.add_argument("--config", metavar="FILE.yaml", help="a YAML file of TrialConfig keys")
    parser.add_argument("--set", dest="assignments", nargs="+", action="extend", default=[],
                        metavar="KEY=VALUE", help="override config keys, e.g. --set tau=0.3 epochs=2")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="imlgcn", description="IML-GCN training and studies on Ray. `imlgcn config` lists every "
                                               "config key (for --set KEY=VALUE) with its default and meaning.")
    parser.add_argument("--verbose", action="store_true",
                        help="let MLflow, Optuna, Ray and the Ray workers print their own lines too")
    parser.set_defaults(verbose=False)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="pretrain -> embed -> train on Ray Train workers")
    _add_config_options(train)
    train.add_argument("--tracking-uri", help="MLflow store (default sqlite:///mlflow.db)")
    train.add_argument("--address", help="join this Ray cluster instead of starting a local one")
    train.add_argument("--storage", default="imlgcn_runs", help="checkpoints and the stage-1 cache")
    train.add_argument("--experiment", default="imlgcn-train", help="MLflow experiment name")

    params = commands.add_parser("params", help="parameter counts and GFLOPs per image (no data, no weights)")
    _add_config_options(params)
    params.add_argument("--backbone", help="timm model name, e.g. tresnet_m")
    params.add_argument("--num-classes", type=int)
    params.add_argument("--embedding", choices=tuple(EMBEDDINGS), help="node features: " + "; ".join(
        f"{name}: {entry.label}" for name, entry in EMBEDDINGS.items()))
    params.add_argument("--pca-dim", type=int, help="k for fpca and random (default: number of classes)")
    params.add_argument("--word-dim", type=int, default=WORD_DIM)
    params.add_argument("--hidden", type=int, default=1024)
    params.add_argument("--image-size", type=int, help="resolution of the GFLOPs count (default: the config's)")
    params.add_argument("--space", choices=tuple(SPACES),
                        help="a size-plane space (sizes, paper-coco-sizes): every size of each of its (backbone, "
                             "resolution) points with the config's head")

    _add_study_commands(commands)
    commands.add_parser("config", help="every config key with its default and meaning")

    compare = commands.add_parser("compare", help="arms (config overrides) over training seeds, paired differences")
    compare.add_argument("--name", required=True, help="names the folder and the MLflow experiment compare-NAME")
    _add_config_options(compare)
    compare.add_argument("--arms", default="table3",
                         help="a built-in arm set (table3: direct, direct-reinit, word, fi, fi-centred, fpca, fpca-p0, "
                              "random-nodes; paper: direct, word, fi, fpca; sizes: direct and fpca on each backbone of "
                              "the sizes space) or a YAML file; the first arm is the reference")
    compare.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (the data seed stays)")
    compare.add_argument("--max-concurrent", type=int, default=0, help="0 = as many as the CPUs allow")
    compare.add_argument("--storage", default="imlgcn_studies", help="folders of studies and comparisons")
    compare.add_argument("--tracking-uri", help="MLflow store (default sqlite:///mlflow.db)")
    compare.add_argument("--address", help="join this Ray cluster instead of starting a local one")

    data = commands.add_parser("data", help="data sets").add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", help="write the embedded synthetic data set (COCO format)")
    synth.add_argument("--out", required=True)
    synth.add_argument("--classes", default=DEFAULTS.synthetic_classes,
                       help="default (the documented rule), all, or COCO class names separated by commas")
    synth.add_argument("--labels", default=DEFAULTS.synthetic_labels, choices=("coco", "independent"),
                       help="coco: COCO's label structure; independent: the control with the same frequencies")
    synth.add_argument("--train-images", type=int, default=DEFAULTS.synthetic_train_images)
    synth.add_argument("--val-images", type=int, default=DEFAULTS.synthetic_val_images)
    synth.add_argument("--image-size", type=int, default=DEFAULTS.image_size)
    synth.add_argument("--seed", type=int, default=DEFAULTS.data_seed, help="the data seed")
    stats = data.add_parser("stats", help="label statistics of a split, as one JSON line")
    stats.add_argument("--dataset", default="coco", choices=tuple(DATASETS))
    stats.add_argument("--data-dir", required=True)
    stats.add_argument("--split", help="default: the training split (coco train, voc trainval, vg500 train)")

    predict = commands.add_parser("predict", help="labels of images from a trained model")
    predict.add_argument("--model", required=True, metavar="URI",
                         help="a model folder, models:/imlgcn-NAME/VERSION or runs:/RUN_ID/model")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--threshold", type=float, default=0.5, help="print labels with probability >= this")
    predict.add_argument("--json", action="store_true", help="one JSON line per image instead of a table")
    predict.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    predict.add_argument("--batch-size", type=int, default=16)
    predict.add_argument("--tracking-uri", help="MLflow store holding the model (default sqlite:///mlflow.db)")
    for sub in _leaf_parsers(parser):  # `imlgcn study run ... --verbose` works too
        sub.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every (sub)command's own parser."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _leaf_parsers(child) or [child]
    return found


def _add_study_commands(commands) -> None:
    from study.driver.record import SIZES
    from trainables.size_measures import SIZE_MEASURES

    study = commands.add_parser("study", help="Ray Tune + Optuna studies").add_subparsers(dest="study_command",
                                                                                            required=True)
    run = study.add_parser("run", help="start a study")
    run.add_argument("--name", required=True)
    _add_config_options(run)
    run.add_argument("--space", default="paper", choices=tuple(SPACES),
                     help="search space in search_spaces/: the paper's head space, a smaller one, the size plane of "
                          "the embedded data (backbones x resolutions), Table 1's backbones on COCO")
    run.add_argument("--size", choices=tuple(SIZES), default="inference_params",
                     help="the size the multi-objective study minimises: " + "; ".join(
                         f"{option} = {SIZE_MEASURES[key].how}" for option, key in SIZES.items()))
    run.add_argument("--objective", choices=("multi", "map"), default="multi",
                     help="multi: maximise mAP and minimise --size (Pareto); map: mAP alone with ASHA")
    run.add_argument("--num-samples", type=int, default=DEFAULT_STUDY_SAMPLES,
                     help="fine-tuning trials (level 2): the screened configurations promoted, plus Optuna's backbone lr")
    run.add_argument("--screen", type=int, default=DEFAULT_SCREENED,
                     help="head configurations screened on cached features first (level 1); 0 = fine-tune only")
    run.add_argument("--eta", type=int, default=3,
                     help="level 2's early stopping keeps the top 1/eta at each rung (MOASHA); 0 = off")
    run.add_argument("--max-concurrent", type=int, default=0, help="0 = as many as the CPUs allow")
    run.add_argument("--sampler", choices=SAMPLERS, default="auto", help=SAMPLER_HELP)
    resume = study.add_parser("resume", help="continue a study whose driver died")
    resume.add_argument("name")
    extend = study.add_parser("extend", help="add trials to a finished study")
    extend.add_argument("name")
    extend.add_argument("--num-samples", type=int, required=True, help="more fine-tuning trials")
    extend.add_argument("--screen", type=int, default=0, help="screen this many more configurations first")
    extend.add_argument("--sampler", choices=SAMPLERS, default="auto", help=SAMPLER_HELP)
    listing = study.add_parser("list", help="the studies in a storage folder")
    export = study.add_parser("export", help="register trained models in the MLflow model registry")
    export.add_argument("name")
    chosen = export.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--trial", metavar="ID", help="one trial id (see `imlgcn study report`)")
    chosen.add_argument("--front", action="store_true", help="every trial on the Pareto front")
    report = study.add_parser("report", help="CSV, PNG and HTML of the trials and their Pareto front")
    report.add_argument("name")
    report.add_argument("--out", help="folder for the files (default: the study's folder/report)")
    for sub in (run, resume, extend, listing, report, export):
        sub.add_argument("--storage", default="imlgcn_studies", help="study folders (a shared path on a cluster)")
    for sub in (run, resume, extend, report, export):
        sub.add_argument("--tracking-uri", help="MLflow store (default sqlite:///mlflow.db)")
    for sub in (run, resume, extend):
        sub.add_argument("--address", help="join this Ray cluster instead of starting a local one")


def cmd_study(args: argparse.Namespace) -> dict | None:
    from study.levels import lifecycle
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
        for row in export_models(record, _study_uri(args, record), args.trial, args.front, progress):
            print(json.dumps(row))
        return None
    if args.study_command == "run":
        config = _trial_config(args, "study-demo")
        record = lifecycle.create_study(args.name, config, args.space, args.objective, args.size, args.num_samples,
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
    return _report(args, record)


def _study_uri(args: argparse.Namespace, record) -> str:
    """--tracking-uri when given (e.g. the server's address seen from this machine), else the study's own."""
    from study.driver.mlflow_store import resolve_tracking_uri

    given = getattr(args, "tracking_uri", None)
    return resolve_tracking_uri(given) if given else record.tracking_uri


def _report(args: argparse.Namespace, record) -> None:
    from study.reports.report import write_report

    out = getattr(args, "out", None) or str(record.report_dir)
    files = write_report(_study_uri(args, record), record.name, out, record.size_metric, record.screened_markers())
    progress(f"report: {files['html']} (also {Path(files['csv']).name}, {Path(files['png']).name} and "
             f"{Path(files['txt']).name} there, and on the study's MLflow parent run)")
    rho, pairs = files["agreement"]
    if files["screened"]:
        progress(f"screening predicted fine-tuning with Spearman's rank correlation {rho:.2f} over the {pairs} "
                 "promoted configurations that ran all their epochs")
    print(files["text"])
    _open_hints(args, record)
    return None


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

    config = _trial_config(args)
    return run_train(config, args.tracking_uri, args.address, args.storage, args.experiment, progress)


def cmd_params(args: argparse.Namespace) -> dict:
    from study.command.params_command import params

    return params(args)


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

    config = _trial_config(args, "demo")
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
