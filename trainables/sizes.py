"""A trained model's sizes on the accuracy-versus-size plane, measured in one place for every run.

- n_params: the paper's count (Table 1), the GCN's weights included;
- n_params_inference: the folded model's (`model.fold`): backbone + C x d, what a user deploys.
A head trained without its backbone (on cached features) counts its backbone by name.
"""

from __future__ import annotations

from torch import nn

from trainables.config import TrialConfig
from trainables.model import fold, model_parameter_count


def model_sizes(model: nn.Module, config: TrialConfig) -> dict[str, int]:
    """{"n_params", "n_params_inference"} of a built model (a head alone counts its backbone by name)."""
    return {"n_params": model_parameter_count(model, config.backbone),
            "n_params_inference": model_parameter_count(fold(model), config.backbone)}
