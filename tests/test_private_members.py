"""The private members of Optuna and Ray that the study uses exist in the installed versions (an update that
renames one fails here, in one line, not inside a sweep)."""

from study.driver import private_members


def test_the_installed_optuna_and_ray_have_every_private_member_the_study_uses() -> None:
    lacking = private_members.missing()
    assert not lacking, "; ".join(lacking)


def test_a_member_the_installed_version_lacks_is_named_with_its_package_and_version(monkeypatch) -> None:
    from importlib.metadata import version

    monkeypatch.setattr(private_members, "MEMBERS", private_members.MEMBERS + (
        ("ray", "OptunaSearch", "_renamed_in_a_future_ray", "a test"),
        ("optuna", "JournalStorage", "_replay_result._gone", "a test")))
    assert private_members.missing() == [
        f"ray {version('ray')} OptunaSearch._renamed_in_a_future_ray (used by a test)",
        f"optuna {version('optuna')} JournalStorage._replay_result._gone (used by a test)"]
