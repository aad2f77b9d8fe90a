"""The callback's history: checkpoint state, CSV and markdown round trips, the demo summary."""

from __future__ import annotations

from lit_rpe.demo import summary
from lit_rpe.training.callbacks.eval_history import EvalHistory, markdown_tables, read_history_csv


def history() -> EvalHistory:
    h = EvalHistory()
    h.add(200, "32x32/rpe2d_even", {"val_loss": 0.5, "swd": 120.25})
    h.add(200, "64x64/rpe2d_even", {"val_loss": 0.75, "swd": 140.0})
    h.add(400, "32x32/rpe2d_even", {"val_loss": 0.25, "swd": 110.0, "fid": 33.5})
    return h


def test_state_and_csv_round_trips(tmp_path):
    h = history()
    assert h.steps() == [200, 400]
    restored = EvalHistory()
    restored.load_state_dict(h.state_dict())
    assert restored.rows == h.rows
    assert read_history_csv(h.write_csv(tmp_path / "eval" / "history.csv")) == h.rows
    assert [r.log_key for r in h.rows[:2]] == [
        "eval/val_loss/32x32/rpe2d_even",
        "eval/swd/32x32/rpe2d_even",
    ]
    assert h.plot(tmp_path / "eval" / "history.png").stat().st_size > 10_000


def test_markdown_has_a_table_per_metric_with_a_row_per_step():
    text = "\n".join(markdown_tables(history().rows))
    assert text.index("FID") < text.index("Sliced") < text.index("validation loss")
    assert "| step | 32x32/rpe2d_even | 64x64/rpe2d_even |" in text
    assert "| 200 | 0.5 | 0.75 |" in text and "| 400 | 0.25 | n/a |" in text
    assert "| 400 | 33.5 | n/a |" in text  # FID only where it was measured


def test_demo_summary_shows_the_curves(tmp_path):
    assert "Scores during training" not in summary(tmp_path, [], "experiments/demo.yaml", "32-true")
    history().write_csv(tmp_path / "eval" / "history.csv")
    text = summary(tmp_path, [], "experiments/demo.yaml", "32-true")
    assert "## Scores during training (ResolutionEvalCallback)" in text
    assert f"`{tmp_path / 'eval' / 'history.png'}`" in text
    assert "| 200 | 120.2 | 140 |" in text
