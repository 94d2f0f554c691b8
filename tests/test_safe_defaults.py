"""Safe defaults, checked on the source: loopback binds, no unpickling of files, safe YAML, no secrets."""

import re
from pathlib import Path

import pytest

from trainables.config import TrialConfig

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("trainables", "study", "search_spaces") for p in (ROOT / folder).rglob("*.py"))


def _calls(name: str) -> list[tuple[Path, str]]:
    """Every `name(...)` call in the package sources, with its argument text (to the closing bracket)."""
    found = []
    for path in SOURCES:
        text = path.read_text()
        for match in re.finditer(re.escape(name) + r"\(", text):
            depth, end = 1, match.end()
            while depth and end < len(text):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            found.append((path, text[match.end():end - 1]))
    return found


def test_sources_were_found():
    assert len(SOURCES) > 20


def test_torch_load_is_weights_only():
    calls = _calls("torch.load")
    assert calls and all("weights_only=True" in args for _, args in calls), calls


def test_numpy_load_never_unpickles():
    calls = _calls("np.load")
    assert calls and all("allow_pickle=False" in args for _, args in calls), calls


@pytest.mark.parametrize("banned", [r"yaml\.load\(", r"pickle\.load", r"(?<![.\w])eval\(", r"(?<![.\w])exec\(",
                                    "allow_pickle=True", "weights_only=False", r"0\.0\.0\.0"])
def test_no_unsafe_call(banned):
    offenders = [str(p.relative_to(ROOT)) for p in SOURCES if re.search(banned, p.read_text())]
    assert not offenders, f"{banned} in {offenders}"


def test_local_ray_and_dashboard_bind_to_loopback():
    from study.driver.ray_session import LOOPBACK_NODE_IP

    assert LOOPBACK_NODE_IP.startswith("127.")
    (init,) = [args for path, args in _calls("ray.init") if 'address="local"' in args]
    assert "_node_ip_address=LOOPBACK_NODE_IP" in init and "**board" in init
    source = (ROOT / "study" / "driver" / "ray_session.py").read_text()  # the dashboard, when started
    assert '"include_dashboard": True, "dashboard_host": "127.0.0.1"' in source


@pytest.mark.parametrize("configs, asks", [([TrialConfig()], False), ([TrialConfig(num_workers=2)], True),
                                           ([TrialConfig(train_in_trial=False)], True),
                                           ([TrialConfig(), TrialConfig(num_workers=2)], True), ([], False)])
def test_a_local_ray_serves_the_state_api_only_to_trainings_on_worker_groups(configs, asks):
    """Ray Train's placement-group cleaner asks the state API (the dashboard) for a worker group's
    controller; trainings in the trial's own process never ask, and a Ray without its dashboard starts
    with 4 CPU s less."""
    from study.driver.ray_session import needs_state_api

    assert needs_state_api(configs) is asks


def test_mlflow_url_printing_is_off_in_every_process_we_start():
    """MLflow prints run URLs (with any credentials of the URI) when a run ends."""
    from study.driver.ray_session import WORKER_ENV

    assert WORKER_ENV["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"


def test_no_secret_like_config_keys():
    """Params logged to MLflow are the TrialConfig fields: none may hold a credential."""
    from dataclasses import fields

    from trainables.config import TrialConfig

    names = [f.name for f in fields(TrialConfig)]
    assert not [n for n in names if re.search(r"token|secret|password|credential|key$", n)], names
