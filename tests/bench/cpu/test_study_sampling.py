"""bench.cpu.study_sampling: settings are checked, and refused with one line, before any work."""

import pytest

from bench.cpu.study_sampling import main, parse_setting


def test_a_setting_is_steps_guidance_resolution_rule():
    steps, guidance, resolution, rule = parse_setting("12:4:64:interpolate")
    assert (steps, guidance, resolution, rule.label) == (12, 4.0, 64, "interpolate")
    for bad in ("6:4", "6:4:32:nope", "six:4:32:extrapolate"):
        with pytest.raises(SystemExit, match="steps:guidance:resolution:rule"):
            parse_setting(bad)


def test_bad_settings_and_missing_checkpoints_stop_before_sampling(tmp_path):
    with pytest.raises(SystemExit, match="steps:guidance"):
        main([str(tmp_path / "missing.ckpt"), "--settings", "6:4"])
    with pytest.raises(SystemExit, match="no checkpoint"):
        main([str(tmp_path / "missing.ckpt")])
