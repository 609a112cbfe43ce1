"""Typed profile options: the catalog's resolver (types, bounds, unknown option, wrong profile), the
catalog agreeing with each profile's config class, and the CLI's `--set` reaching the report."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from mlcore import catalog
from mlcore.catalog import ProfileOptionError, profile_options_resolve
from tests.mlcore import synthetic


def test_resolver_types_strings_and_json_values_and_fills_defaults() -> None:
    assert profile_options_resolve("pruned", {"sparsity": "0.7", "steps": "2"}) == {
        "budget": None, "sparsity": 0.7, "steps": 2, "finetune_epochs": 1}
    assert profile_options_resolve("pruned", {"sparsity": 0.25, "budget": 0})["budget"] == 0.0
    typed = profile_options_resolve("distilled", {"temperature": 4, "student_preset": "tiny"})
    assert typed["temperature"] == 4.0 and isinstance(typed["temperature"], float) and typed["student_preset"] == "tiny"
    assert profile_options_resolve("distilled", {"student_preset": ""})["student_preset"] is None  # empty: the profile's choice
    assert profile_options_resolve("mixed-precision", {"retrain": "false"})["retrain"] is False
    assert profile_options_resolve("int8", {"engine": "fbgemm"})["engine"] == "fbgemm"
    assert profile_options_resolve("baseline", {}) == {}
    assert profile_options_resolve("compact", None)["engine"] == "auto"


@pytest.mark.parametrize("profile, raw, option, words", [
    ("pruned", {"sparsity": "1.5"}, "sparsity", "above the maximum 0.99"),
    ("pruned", {"sparsity": -0.1}, "sparsity", "below the minimum 0"),
    ("pruned", {"sparsity": "half"}, "sparsity", "not a number"),
    ("pruned", {"sparsity": True}, "sparsity", "not a number"),
    ("slim", {"steps": "2.5"}, "steps", "not an integer"),
    ("slim", {"ffn_fraction": "nan"}, "ffn_fraction", "not finite"),
    ("int8", {"engine": "cudnn"}, "engine", "not one of the choices"),
    ("mixed-precision", {"retrain": "maybe"}, "retrain", "not true or false"),
    ("distilled", {"temperature": ""}, "temperature", "is empty"),
])
def test_resolver_refuses_bad_values_naming_option_value_reason_and_range(profile, raw, option, words) -> None:
    with pytest.raises(ProfileOptionError) as info:
        profile_options_resolve(profile, raw)
    err = info.value
    assert err.option == option and err.value == raw[option] and words in err.reason
    message = str(err)
    assert option in message and repr(raw[option]) in message and words in message
    assert err.valid and err.valid in message  # the valid range, in words


def test_resolver_refuses_an_option_of_another_profile_and_an_unknown_profile() -> None:
    with pytest.raises(ProfileOptionError) as info:
        profile_options_resolve("pruned", {"temperature": 2})
    assert info.value.option == "temperature"
    assert "has no option 'temperature'" in str(info.value) and "distilled" in str(info.value)
    assert "sparsity" in str(info.value)  # the options pruned does have
    with pytest.raises(ProfileOptionError, match="has no option 'budget'"):
        profile_options_resolve("baseline", {"budget": 0.1})
    with pytest.raises(ProfileOptionError, match="has no option 'wobble'"):
        profile_options_resolve("slim", {"wobble": 1})
    with pytest.raises(ProfileOptionError, match="unknown profile 'tiny-magic'") as info:
        profile_options_resolve("tiny-magic", {})
    assert info.value.option is None


def test_every_option_is_well_formed_and_no_option_shadows_a_hyperparameter() -> None:
    for profile in catalog.PROFILES.values():
        names = [o.name for o in profile.options]
        assert len(names) == len(set(names)), profile.key
        for o in profile.options:
            assert o.type in ("int", "float", "bool", "choice") and o.help, (profile.key, o.name)
            assert o.name not in catalog.HYPERPARAMETERS  # `--set NAME=VALUE` must not be ambiguous
            if o.type == "choice":
                assert o.choices and (o.default is None or o.default in o.choices)
            # the default passes its own check
            assert profile_options_resolve(profile.key, {o.name: o.default})[o.name] == o.default
    assert catalog.profiles_with_option("sparsity") == ["pruned"]


def test_catalog_options_are_the_config_fields_with_the_same_defaults() -> None:
    from mlcore.compress import PROFILE_IMPLS
    from mlcore.compress.compact import CompactConfig

    assert list(PROFILE_IMPLS) == list(catalog.PROFILES)
    for key, impl in PROFILE_IMPLS.items():
        options = {k: v for k, v in catalog.profile_option_defaults(key).items() if k != "budget"}
        config = impl.config(**{k: v for k, v in options.items() if v is not None})
        if isinstance(config, CompactConfig):
            defaults = {f.name: getattr(part, f.name) for part in (config.slim, config.int8) for f in fields(part)}
        else:
            defaults = {f.name: getattr(config, f.name) for f in fields(config)}
        for name, value in options.items():
            assert name in defaults, (key, name)
            assert defaults[name] == value, (key, name)  # a catalog default is the config's default
        assert impl.config() == config, key  # same config with no options at all


def _dna_file(path: Path) -> Path:
    seqs, labels = synthetic.dna(120, seed=0, length=40)
    return synthetic.write_csv(path, ["sequence", "label"], [[s, y] for s, y in zip(seqs, labels)])


def _train(tmp_path: Path, *extra: str) -> int:
    from mlcore.cli import main

    return main(["train", "--task", "dna-classification", "--data", str(tmp_path / "train.csv"), "--preset", "tiny",
                 "--epochs", "1", "--seed", "0", "--explain-samples", "0", "--no-progress", "--threads", "1",
                 "--out", str(tmp_path / "out"), *extra])


def test_cli_set_changes_the_sparsity_the_report_shows(tmp_path: Path, capsys) -> None:
    _dna_file(tmp_path / "train.csv")
    code = _train(tmp_path, "--profile", "pruned", "--set", "sparsity=0.8", "--set", "steps=1",
                  "--set", "finetune_epochs=0", "--set", "lr=0.002")
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["options"] == {"budget": None, "sparsity": 0.8, "steps": 1, "finetune_epochs": 0}
    assert report["optimized"]["sparsity"] == pytest.approx(0.8, abs=0.01)  # the default would be 0.5
    assert report["config"]["sparsity"] == 0.8
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["hyperparameters"]["lr"] == 0.002  # a hyperparameter through the same --set
    assert "options: budget=-, sparsity=0.8, steps=1, finetune_epochs=0" in capsys.readouterr().out


@pytest.mark.parametrize("extra, words", [
    (["--profile", "pruned", "--set", "sparsity=1.5"], "'sparsity': '1.5' is above the maximum 0.99"),
    (["--profile", "pruned", "--set", "temperature=2"], "profile 'pruned' has no option 'temperature'"),
    (["--set", "sparsity=0.5"], "'sparsity' is a profile option"),
    (["--profile", "int8", "--set", "engine=cudnn"], "not one of the choices"),
    (["--profile", "slim", "--set", "wobble=1"], "unknown name 'wobble'"),
    (["--profile", "baseline", "--budget", "0.1"], "profile 'baseline' has no option 'budget'"),
    (["--profile", "slim", "--set", "ffn_fraction"], "--set expects NAME=VALUE"),
])
def test_cli_refuses_bad_options_as_usage_errors_before_training(tmp_path: Path, capsys, extra, words) -> None:
    _dna_file(tmp_path / "train.csv")
    assert _train(tmp_path, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m mlcore train") and words in err
    assert not (tmp_path / "out").exists()  # refused before anything ran
