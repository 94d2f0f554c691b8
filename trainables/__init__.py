"""The run side: see README "How it works" for its rooms.

MOVED: modules that moved into rooms on 2026-12-07, by their old dotted path; importable under it still, so
that a study whose Tune state was saved before the move resumes (trainables/moved.py). One old name is
not here: `trainables.stages` is the stages' room now; its old module (run_stages, called inside a trial and
never pickled) is trainables.stages.stages.
"""

from trainables.moved import alias

MOVED = {
    "trainables.labelled_images": "trainables.data.labelled_images",
    "trainables.coco": "trainables.data.coco",
    "trainables.readers": "trainables.data.readers",
    "trainables.datasets": "trainables.data.datasets",
    "trainables.images": "trainables.data.images",
    "trainables.synthetic": "trainables.data.synthetic",
    "trainables.synthetic_render": "trainables.data.synthetic_render",
    "trainables.label_model": "trainables.data.label_model",
    "trainables.preprocess": "trainables.data.preprocess",
    "trainables.model": "trainables.models.model",
    "trainables.label_graph": "trainables.models.label_graph",
    "trainables.sizes": "trainables.models.sizes",
    "trainables.saved_model": "trainables.models.saved_model",
    "trainables.losses": "trainables.training.losses",
    "trainables.metrics": "trainables.training.metrics",
    "trainables.epochs": "trainables.training.epochs",
    "trainables.evaluation": "trainables.training.evaluation",
    "trainables.runtime": "trainables.training.runtime",
    "trainables.splits": "trainables.training.splits",
    "trainables.split_index": "trainables.training.split_index",
    "trainables.stage_cache": "trainables.stages.stage_cache",
    "trainables.gcn_inputs": "trainables.stages.gcn_inputs",
    "trainables.head": "trainables.stages.head",
    "trainables.pretrain": "trainables.stages.pretrain",
    "trainables.baseline": "trainables.stages.baseline",
    "trainables.stage3": "trainables.stages.stage3",
    "trainables.trainable": "trainables.trial.trainable",
    "trainables.run_context": "trainables.trial.run_context",
    "trainables.run_markers": "trainables.trial.run_markers",
    "trainables.mlflow_runs": "trainables.trial.mlflow_runs",
    "trainables.mlflow_schema": "trainables.trial.mlflow_schema",
}
alias(MOVED)
