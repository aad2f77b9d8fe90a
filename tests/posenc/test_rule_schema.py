"""One rule schema: ``parse_rule`` reads every ``InferenceRule`` field from a grid file, an
experiment file and the command line, and refuses wrong names and values with the valid ones."""

import dataclasses

import pytest
import yaml

from lit_rpe.eval.grid.spec import load_grid
from lit_rpe.posenc import (
    InferenceRule,
    base_frequencies,
    ntk_theta,
    parse_rule,
    rule_frequencies,
)
from lit_rpe.training.cli import main
from lit_rpe.training.experiments import EXPERIMENTS_DIR

DIM, THETA, TRAIN, TEST = 16, 10000.0, (8, 8), (16, 16)  # s = 2 on both axes
DYPE = {"name": "dype_ntk", "lambda_s": 1.0, "lambda_t": 3.0}
TASR = {"name": "tasr", "watershed": 0.5}


def row_frequencies(rule: InferenceRule, t: float):
    return rule_frequencies(rule, dim=DIM, theta=THETA, train_grid=TRAIN, test_grid=TEST, t=t).h


def check_frequencies(dype: InferenceRule, tasr: InferenceRule) -> None:
    """The parsed lambda_s, lambda_t and watershed reach the frequencies, by closed form."""
    # dype_ntk: theta' = theta * s^(kappa d / (d - 2)), kappa = lambda_s t^lambda_t = 0.125
    expected = base_frequencies(DIM, ntk_theta(DIM, THETA, 2.0**0.125))
    assert row_frequencies(dype, 0.5).tolist() == pytest.approx(expected.tolist())
    default = row_frequencies(InferenceRule("dype_ntk"), 0.5)  # kappa = 2 * 0.25 = 0.5
    assert default.tolist() != pytest.approx(expected.tolist())
    # tasr at t = 0.6 (Lumina's 0.4): before a 0.5 watershed it interpolates (w / s); after the
    # default 0.3 one it uses the base theta * s.
    assert row_frequencies(tasr, 0.6).tolist() == pytest.approx(
        (base_frequencies(DIM, THETA) / 2).tolist()
    )
    assert row_frequencies(InferenceRule("tasr"), 0.6).tolist() == pytest.approx(
        base_frequencies(DIM, THETA * 2).tolist()
    )


def test_a_rule_round_trips_through_its_yaml_form():
    for rule in (
        InferenceRule("ntk"),
        InferenceRule("dype_yarn", timestep_shift="auto", tau_axes="max", lambda_t=1.0),
        InferenceRule("tasr", attention_scale="proportional", watershed=0.2),
    ):
        assert parse_rule(yaml.safe_load(yaml.safe_dump(rule.spec()))) == rule
    assert InferenceRule("ntk").spec() == "ntk"
    assert InferenceRule("dype_ntk", lambda_s=1.5).label == "dype_ntk+lambda_s_1.5"


@pytest.mark.parametrize(
    "value, message",
    [
        ({"name": "ntk", "scale": 2}, "unknown rule field(s) ['scale']; valid: name, scaling"),
        ({"lambda_s": 1.0}, "a rule mapping needs a name; valid: extrapolate"),
        ({"name": "ntk", "scaling": "mixed"}, "unknown scaling 'mixed'; valid: decoupled, coupled"),
        ({"name": "ntk", "attention_scale": "x"}, "valid: none, yarn, proportional"),
        ({"name": "dype_ntk", "lambda_s": "big"}, "lambda_s must be a number or null"),
        ({"name": "tasr", "watershed": 1.5}, "watershed is a time in [0, 1]"),
        ({"name": "ntk", "watershed": 0.5}, "watershed applies to the tasr rule only"),
        ("ntk_aware", "unknown inference rule 'ntk_aware'; valid: extrapolate"),
        (3, "a rule is a name or a mapping of its fields"),
    ],
)
def test_wrong_fields_and_values_name_the_valid_ones(value, message):
    with pytest.raises(ValueError) as err:
        parse_rule(value)
    assert message in str(err.value)


def test_lambda_and_watershed_from_a_grid_file(tmp_path):
    path = tmp_path / "grid.yaml"
    grid = {
        "name": "g",
        "out_dir": str(tmp_path),
        "val_shards": "none",
        "models": [{"name": "m", "checkpoint": "m.ckpt"}],
        "rules": [DYPE, TASR],
        "resolutions": [32],
    }
    path.write_text(yaml.safe_dump(grid))
    dype, tasr = load_grid(path, check_files=False).rules
    check_frequencies(dype, tasr)
    grid["rules"] = [{"name": "tasr", "watershed": 2.0}]
    path.write_text(yaml.safe_dump(grid))
    with pytest.raises(ValueError, match="rules: watershed is a time in"):
        load_grid(path, check_files=False)


def parsed_rule(capsys, *args: str) -> InferenceRule:
    """``model.rule`` of the demo experiment as ``--print_config`` composes it with ``args``."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(EXPERIMENTS_DIR / "demo.yaml"), *args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return parse_rule(yaml.safe_load(capsys.readouterr().out)["model"]["rule"])


def test_lambda_and_watershed_from_an_experiment_file_and_the_command_line(capsys, tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"model": {"rule": DYPE}}))
    dype_file = parsed_rule(capsys, "--config", str(overlay))
    dype_cli = parsed_rule(capsys, f"--model.rule={DYPE}")
    tasr_cli = parsed_rule(capsys, f"--model.rule={TASR}")
    assert dype_file == dype_cli == InferenceRule(**DYPE)
    check_frequencies(dype_cli, tasr_cli)


def test_a_wrong_rule_field_on_the_command_line_fails_at_parse_time(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                "--config",
                str(EXPERIMENTS_DIR / "demo.yaml"),
                "--model.rule={name: dype_ntk, lambda: 2}",
                "--print_config",
            ]
        )
    assert exit_info.value.code != 0
    assert "unknown rule field(s) ['lambda']" in capsys.readouterr().err


def test_every_rule_field_is_one_of_the_schema():
    """The label and the YAML form cover every field, so a new add-on needs no other edit."""
    rule = InferenceRule("dype_ntk", "coupled", "proportional", "auto", "max", 1.5, 2.5)
    assert parse_rule(rule.spec()) == rule
    assert rule.label.count("+") == len(dataclasses.fields(InferenceRule)) - 2  # no watershed
