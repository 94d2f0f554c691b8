import pytest

from study.driver.config import load_trial_config, preset_names, read_yaml
from trainables.config import ConfigError, TrialConfig
from trainables.config_keys import parse_assignments


def test_defaults_are_valid_and_flat():
    config = TrialConfig()
    values = config.to_dict()
    assert all(isinstance(v, (bool, int, float, str)) for v in values.values())
    assert TrialConfig(**values) == config


def test_from_dict_coerces_strings_like_set_and_mlflow_params():
    config = TrialConfig.from_dict({"tau": "0.3", "epochs": "2", "finetune_backbone": "false", "pca_dim": "5"})
    assert (config.tau, config.epochs, config.finetune_backbone, config.pca_dim) == (0.3, 2, False, 5)


@pytest.mark.parametrize("values, fragment", [
    ({"taux": "1"}, "unknown config key 'taux'"),
    ({"tau": "1.5"}, "tau=1.5 is out of range"),
    ({"p": "-0.1"}, "p=-0.1 is out of range"),
    ({"embedding": "glove"}, "embedding='glove' is not one of"),
    ({"epochs": "two"}, "epochs='two' is not a valid int"),
    ({"lr_milestones": "10;20"}, "lr_milestones"),
    ({"synthetic_classes": "person,dragon"}, "dragon is not a COCO class name"),
    ({"embedding": "none", "epochs": "0", "direct_head": "reinit"}, "direct_head=reinit with epochs=0"),
    ({"embedding": "fpca", "epochs": "0"}, "epochs=0 must be at least 1"),
])
def test_bad_values_name_the_key(values, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        TrialConfig.from_dict(values)


def test_pca_dim_checked_against_the_classes():
    TrialConfig(pca_dim=20).check_classes(20)
    with pytest.raises(ConfigError, match="pca_dim=21 exceeds the 20 classes"):
        TrialConfig(pca_dim=21).check_classes(20)
    TrialConfig(embedding="fi", pca_dim=99).check_classes(20)  # pca_dim only matters for fpca


def test_unknown_backbone_is_rejected():
    TrialConfig(backbone="resnet18").check_backbone()
    with pytest.raises(ConfigError, match="not a timm model"):
        TrialConfig(backbone="resnet_does_not_exist").check_backbone()


def test_parse_assignments():
    assert parse_assignments(["tau=0.3", "backbone = resnet18"]) == {"tau": "0.3", "backbone": "resnet18"}
    with pytest.raises(ConfigError, match="not key=value"):
        parse_assignments(["tau"])


def test_preset_then_file_then_set(tmp_path):
    assert "demo" in preset_names()
    path = tmp_path / "c.yaml"
    path.write_text("tau: 0.3\nepochs: 3\n")
    assert load_trial_config("demo") == TrialConfig()  # the demo preset is the default run
    assert load_trial_config(None, str(path), ["epochs=5"]).epochs == 5
    assert load_trial_config(None, str(path), []).tau == 0.3


def test_yaml_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tau: [0.3\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        read_yaml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        read_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_trial_config("nope")


@pytest.mark.parametrize("values, fragment", [
    ({"precision": "fp8"}, "precision='fp8' is not one of auto | fp32 | bf16 | fp16"),
    ({"keep_checkpoints": "best"}, "keep_checkpoints='best' is not one of front | all | none"),
    ({"epochs": "0"}, "epochs=0 must be at least 1 (0 is allowed only with embedding=none)"),
    ({"embedding": "fpca", "pretrain_epochs": "0"}, "pretrain_epochs=0 without pretrained weights"),
])
def test_new_fields_are_checked(values, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        TrialConfig.from_dict(values)


def test_valid_corner_cases():
    TrialConfig(embedding="none", epochs=0)  # the direct model alone (asl-coco)
    TrialConfig(embedding="fpca", pretrain_epochs=0, pretrained_path="w.safetensors")
    TrialConfig(embedding="word", pretrain_epochs=0)  # GloVe nodes need no trained backbone
    with pytest.raises(ConfigError, match="dataset=coco needs data_dir"):
        TrialConfig(dataset="coco").check_data_dir()
    with pytest.raises(ConfigError, match="augment='bogus' is not a timm auto-augment string"):
        TrialConfig(augment="bogus").check_backbone()
    TrialConfig(augment="rand-m9-mstd0.5-inc1").check_backbone()


def test_worker_cpus_zero_shares_whole_nodes():
    """cpus_per_worker=0: the most CPUs per worker such that the nodes hold every worker at once (a worker
    cannot span nodes: on two 1-CPU nodes a lone worker gets 1 CPU, not the cluster's 2)."""
    config = TrialConfig()
    assert config.worker_cpus([1, 1]) == 1 and config.worker_cpus([8]) == 8
    assert config.worker_cpus([4], concurrent_runs=2) == 2 and config.worker_cpus([3, 3], concurrent_runs=3) == 1
    assert TrialConfig(num_workers=2).worker_cpus([4, 4]) == 4
    assert TrialConfig(cpus_per_worker=3).worker_cpus([1, 1]) == 3  # an explicit value is kept


def test_notes_say_when_step_milestones_lie_past_the_last_epoch():
    """A preset's step schedule (10,20,30) run for one epoch: valid, but the lr never decays; said once."""
    assert TrialConfig(lr_schedule="step", lr_milestones="10,20,30", epochs=1).notes() == [
        "lr_milestones=10,20,30: 10,20,30 lie at or past the last epoch (epochs=1), so the learning rate never decays"]
    assert "does not decay there" in TrialConfig(lr_schedule="step", lr_milestones="1,5", epochs=3).notes()[0]
    assert TrialConfig(lr_schedule="step", lr_milestones="1,2", epochs=3).notes() == []
    assert TrialConfig(lr_schedule="cosine", lr_milestones="10", epochs=1).notes() == []


def test_every_key_is_classified_where_it_is_declared():
    """Each TrialConfig field is declared with knob(default, parts...): a field added without saying what
    it affects fails here, before it silently misses the stage-1 key, the baseline key or the report."""
    from dataclasses import fields

    from trainables.config import PARTS, keys_of

    for f in fields(TrialConfig):
        parts = f.metadata.get("parts")
        assert parts and set(parts) <= set(PARTS), f"{f.name} is not classified: declare it with knob(default, parts)"
    assert set(keys_of("synthetic")) <= set(keys_of("data")) <= set(keys_of("stage1"))
    assert {"tau", "p", "embedding", "pca_dim", "gcn_lr"} <= set(keys_of("head"))
    assert {"backbone", "image_size", "pretrain_epochs", "seed", "loss"} <= set(keys_of("stage1"))
    assert {"epochs", "backbone_lr", "gcn_lr", "finetune_backbone"} <= set(keys_of("baseline"))


def test_keys_derive_from_the_classification():
    """The stage-1, split-index and baseline keys change exactly with the keys declared to affect them."""
    import dataclasses

    from trainables.stages.baseline import baseline_config, baseline_key
    from trainables.config import keys_of
    from trainables.training.split_index import index_path
    from trainables.stages.stage_cache import stage1_key

    base = TrialConfig(dataset="coco", data_dir="/data")
    other = {"str": "x", "int": 7, "float": 0.123, "bool": True}
    valid = {"dataset": "voc", "embedding": "fi", "graph": "mlgcn", "loss": "bce", "lr_schedule": "step",
             "precision": "fp32", "keep_checkpoints": "all", "direct_head": "reinit", "backbone": "resnet18",
             "lr_milestones": "5", "synthetic_classes": "person", "synthetic_labels": "independent"}
    for f in dataclasses.fields(TrialConfig):
        value = (not f.default) if f.type == "bool" else valid.get(f.name, other[f.type])
        changed = dataclasses.replace(base, **{f.name: value})
        if f.name in keys_of("synthetic"):  # meaningful for the synthetic set only
            continue
        assert (stage1_key(changed) != stage1_key(base)) == (f.name in keys_of("stage1")), f.name
        assert (index_path("/r", changed) != index_path("/r", base)) == (f.name in keys_of("data")), f.name
        moves_baseline = f.name in keys_of("stage1") or f.name in keys_of("baseline")
        assert (baseline_key(changed) != baseline_key(base)) == moves_baseline, f.name
    gcn = dataclasses.replace(base, tau=0.7, p=0.9, pca_dim=3, embedding="fi")
    assert baseline_config(gcn) == dataclasses.replace(base, embedding="none")  # the direct model has no graph


def test_config_listing_gives_every_key_and_tag_a_meaning():
    """`imlgcn config`: each key's line ends with what it means (a few words, not a bare qualifier such as
    "synthetic only"), and every tag shown in the lines is explained once, above them."""
    import re
    from dataclasses import fields

    from trainables.config import PARTS
    from trainables.config_keys import describe_keys

    text = describe_keys()
    legend = {part: [line for line in text.splitlines() if line.startswith(f"  {part}: ")] for part in PARTS}
    assert all(len(lines) == 1 and len(lines[0].split()) >= 4 for lines in legend.values()), legend
    for f in fields(TrialConfig):
        line = next(line for line in text.splitlines() if line.startswith(f"  {f.name} = "))
        meaning = re.sub(r"^synthetic only:?", "", line.split(")  ", 1)[1] if ")  " in line else "").strip()
        assert len(re.findall(r"[A-Za-z]{2,}", meaning)) >= 3, line


def test_a_key_given_twice_in_set_takes_its_last_value():
    """As a repeated option in argparse: scripts append overrides to a base list of --set pairs."""
    from study.driver.config import load_trial_config

    assert load_trial_config(None, None, ["tau=0.1", "epochs=3", "tau=0.2"]).tau == 0.2


def test_a_seed_is_in_numpys_range():
    """0..2**32-1: numpy's generators refuse anything else (torch takes a wider range)."""
    import numpy as np

    from trainables.seeds import MAX_SEED, in_range

    assert [in_range(s) for s in (-1, 0, MAX_SEED, MAX_SEED + 1)] == [False, True, True, False]
    np.random.default_rng(MAX_SEED)  # the largest accepted by numpy itself
