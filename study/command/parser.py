"""The `imlgcn` command line: every command, option, default and help text (`build_parser`). The
commands' handlers are in study/command/cli.py.
"""

from __future__ import annotations

import argparse
import re

from search_spaces import SPACES
from trainables.config import TrialConfig
from trainables.embeddings import EMBEDDINGS, WORD_DIM
from trainables.data.datasets import DATASETS

DEFAULTS = TrialConfig()


SAMPLERS = ("auto", "tpe", "random")
SAMPLER_HELP = ("the screening level's Optuna sampler: auto = TPE up to 1,000 screened configurations, random search "
                "above (TPE's cost per trial grows with the trials told); fine-tuning always uses TPE")


# A help text that already says its default: "(default: the config's)", "default: the training split"
STATED_DEFAULT = re.compile(r"\(default\b|\bdefault:|%\(default\)")


class DefaultOnceFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help once: not where the help already states its default
    (argparse's ArgumentDefaultsHelpFormatter appends "(default: None)" after "(default: sqlite:///mlflow.db)"),
    and not for a default that says nothing (None, a flag's False, an empty list). An option without help
    shows none: each option with a default has a help text."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        if (STATED_DEFAULT.search(text) or default is None or default is argparse.SUPPRESS or default == []
                or action.nargs == 0 or not action.option_strings):  # nargs 0: a flag (store_true)
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """Every option's help states its default once (DefaultOnceFormatter); sub-commands' parsers are of
    this class too (argparse builds them with the parent's class)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultOnceFormatter)
        super().__init__(*args, **kwargs)


def package_version() -> str:
    """The installed imlgcn-study's version (its metadata: the one pip installed, not a copy in the code)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("imlgcn-study")
    except PackageNotFoundError:
        return "(not installed: run pip install -e . in the checkout)"


# The preset a command applies without --preset (None: the config keys' defaults, which are demo's)
DEFAULT_PRESETS = {"train": None, "study run": "study-demo", "compare": "demo", "params": "demo"}
DEFAULT_STUDY_SAMPLES = 8  # fine-tuning trials of a study (level 2)
DEFAULT_SCREENED = 500  # head configurations screened on cached features first (level 1)


def _add_config_options(parser: argparse.ArgumentParser, command: str) -> None:
    """--preset, --config and --set; the help names the command's DEFAULT_PRESETS entry, which its handler
    applies (the option's own default stays None, so that a given --preset can be told apart)."""
    from study.driver.config import preset_names

    default_preset = DEFAULT_PRESETS[command] or "none: the config keys' defaults, the same as demo"
    parser.add_argument("--preset", metavar="NAME", help=f"a shipped preset (study/presets/NAME.yaml): "
                                                        f"{', '.join(preset_names())} (default: {default_preset})")
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="a YAML file of TrialConfig keys, applied on top of the preset")
    parser.add_argument("--set", dest="assignments", nargs="+", action="extend", default=[],
                        metavar="KEY=VALUE", help="override config keys, on top of the preset and the YAML file, "
                                                  "e.g. --set tau=0.3 epochs=2")


def _add_dry_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="print the merged config (each value's source), the trials, the data set's size and "
                             "the model's parameter counts, then exit: nothing is trained or written, Ray does "
                             "not start")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="imlgcn", description="IML-GCN training and studies on Ray. `imlgcn config` lists every "
                                               "config key (for --set KEY=VALUE) with its default and meaning.")
    parser.add_argument("--verbose", action="store_true",
                        help="let MLflow, Optuna, Ray and the Ray workers print their own lines too")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}",
                        help="print the installed imlgcn-study version and exit")
    parser.set_defaults(verbose=False)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="pretrain -> embed -> train on Ray Train workers")
    _add_config_options(train, "train")
    _add_dry_run(train)
    train.add_argument("--tracking-uri", help="MLflow store (default: sqlite:///mlflow.db)")
    train.add_argument("--address", help="join this Ray cluster instead of starting a local one")
    train.add_argument("--storage", default="imlgcn_runs", help="checkpoints and the stage-1 cache")
    train.add_argument("--experiment", default="imlgcn-train", help="MLflow experiment name")

    params = commands.add_parser("params", help="parameter counts and GFLOPs per image (no data, no weights)")
    _add_config_options(params, "params")
    params.add_argument("--backbone", help="timm model name, e.g. tresnet_m; with --num-classes and --embedding "
                                           "instead of a preset")
    params.add_argument("--num-classes", type=int,
                        help="labels C of the model (default: the config's data set's, e.g. 80 for coco)")
    params.add_argument("--embedding", choices=tuple(EMBEDDINGS), help="node features: " + "; ".join(
        f"{name}: {entry.label}" for name, entry in EMBEDDINGS.items()))
    params.add_argument("--pca-dim", type=int, help="k for fpca and random (default: number of classes)")
    params.add_argument("--word-dim", type=int, default=WORD_DIM, help="width of the word vectors (embedding word)")
    params.add_argument("--hidden", type=int, help="width of the first graph convolution (default: the config's "
                                                   "gcn_hidden, 1024 unless a preset or file sets it)")
    params.add_argument("--image-size", type=int, help="resolution of the GFLOPs count (default: the config's)")
    params.add_argument("--space", choices=tuple(name for name, space in SPACES.items() if space.plane),
                        help="a size-plane space: every size of each of its (backbone, resolution) points with the "
                             "config's head")

    _add_study_commands(commands)
    commands.add_parser("config", help="every config key with its default and meaning")

    compare = commands.add_parser("compare", help="arms (config overrides) over training seeds, paired differences")
    compare.add_argument("--name", required=True, help="names the folder and the MLflow experiment compare-NAME")
    _add_config_options(compare, "compare")
    _add_dry_run(compare)
    compare.add_argument("--arms", default="table3",
                         help="a built-in arm set (table3: direct, direct-reinit, word, fi, fi-centred, fpca, fpca-p0, "
                              "random-nodes; paper: direct, word, fi, fpca; sizes: direct and fpca on each backbone of "
                              "the sizes space) or a YAML file; the first arm is the reference")
    compare.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (the data seed stays)")
    compare.add_argument("--max-concurrent", type=int, default=0, help="0 = as many as the CPUs allow")
    compare.add_argument("--storage", default="imlgcn_studies", help="folders of studies and comparisons")
    compare.add_argument("--tracking-uri", help="MLflow store (default: sqlite:///mlflow.db)")
    compare.add_argument("--address", help="join this Ray cluster instead of starting a local one")

    data = commands.add_parser("data", help="data sets").add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", help="write the embedded synthetic data set (COCO format)")
    synth.add_argument("--out", required=True, metavar="FOLDER", help="where to write it: a new or empty folder")
    synth.add_argument("--classes", default=DEFAULTS.synthetic_classes,
                       help="default (the documented rule), all, or COCO class names separated by commas")
    synth.add_argument("--labels", default=DEFAULTS.synthetic_labels, choices=("coco", "independent"),
                       help="coco: COCO's label structure; independent: the control with the same frequencies")
    synth.add_argument("--train-images", type=int, default=DEFAULTS.synthetic_train_images, help="training images")
    synth.add_argument("--val-images", type=int, default=DEFAULTS.synthetic_val_images, help="validation images")
    synth.add_argument("--image-size", type=int, default=DEFAULTS.image_size, help="side of the square images, pixels")
    synth.add_argument("--seed", type=int, default=DEFAULTS.data_seed, help="the data seed")
    stats = data.add_parser("stats", help="label statistics of a split, as one JSON line")
    stats.add_argument("--dataset", default="coco", choices=tuple(DATASETS), help="the data set's format")
    stats.add_argument("--data-dir", required=True, metavar="FOLDER", help="the data set's root folder")
    stats.add_argument("--split", help="default: the training split (coco train, voc trainval, vg500 train)")

    predict = commands.add_parser("predict", help="labels of images from a trained model")
    predict.add_argument("--model", required=True, metavar="URI",
                         help="a model folder, models:/imlgcn-NAME/VERSION or runs:/RUN_ID/model")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files to label")
    predict.add_argument("--threshold", type=float, default=0.5, help="print labels with probability >= this")
    predict.add_argument("--json", action="store_true", help="one JSON line per image instead of a table")
    predict.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    predict.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    predict.add_argument("--tracking-uri", help="MLflow store holding the model (default: sqlite:///mlflow.db)")
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
    from study.reports.ties import SIZE_TOLERANCE
    from trainables.size_measures import SIZE_MEASURES

    study = commands.add_parser("study", help="Ray Tune + Optuna studies").add_subparsers(dest="study_command",
                                                                                            required=True)
    run = study.add_parser("run", help="start a study")
    run.add_argument("--name", required=True, help="the study's folder in --storage and its MLflow experiment")
    _add_config_options(run, "study run")
    _add_dry_run(run)
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
    resume.add_argument("name", help="the study's name (see `imlgcn study list`)")
    extend = study.add_parser("extend", help="add trials to a finished study")
    extend.add_argument("name", help="the study's name (see `imlgcn study list`)")
    extend.add_argument("--num-samples", type=int, required=True, help="more fine-tuning trials")
    extend.add_argument("--screen", type=int, default=0, help="screen this many more configurations first")
    extend.add_argument("--sampler", choices=SAMPLERS, default="auto", help=SAMPLER_HELP)
    listing = study.add_parser("list", help="the studies in a storage folder")
    export = study.add_parser("export", help="register trained models in the MLflow model registry")
    export.add_argument("name", help="the study's name (see `imlgcn study list`)")
    chosen = export.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--trial", metavar="ID", help="one trial id (see `imlgcn study report`)")
    chosen.add_argument("--front", action="store_true", help="every trial on the Pareto front")
    report = study.add_parser("report", help="CSV, PNG and HTML of the trials and their Pareto front")
    report.add_argument("name", help="the study's name (see `imlgcn study list`)")
    report.add_argument("--out", help="folder for the files (default: the study's folder/report)")
    for sub in (run, resume, extend, listing, report, export):
        sub.add_argument("--storage", default="imlgcn_studies", help="study folders (a shared path on a cluster)")
    for sub in (run, resume, extend, report, export):
        sub.add_argument("--tracking-uri", help="MLflow store (default: sqlite:///mlflow.db)")
    for sub in (run, resume, extend, report):  # each ends with the report
        sub.add_argument("--size-tolerance", type=float, default=SIZE_TOLERANCE, metavar="FRACTION",
                         help="the report's sizes within this fraction of the larger are the same size "
                              "(0.01: 1 %%)")
    for sub in (run, resume, extend):
        sub.add_argument("--address", help="join this Ray cluster instead of starting a local one")
