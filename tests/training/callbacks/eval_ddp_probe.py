"""A CPU fit of the tiny model with ResolutionEvalCallback on 1 or 2 gloo processes, run by
test_resolution_eval_ddp.py as ``python eval_ddp_probe.py VAL_SHARDS OUT DEVICES [WEIGHTS]``
(Lightning's ``ddp`` strategy re-launches this script for rank 1).

The learning rate is 0, so the EMA follows the same path whatever the number of processes and
both runs score the same weights. Each rank writes ``rank<r>.json``: its history and how many
times it wrote the history files.
"""

from __future__ import annotations

import json
import sys
import warnings
from datetime import timedelta
from pathlib import Path

from callback_fixtures import RandomImages, training_module
from lightning.pytorch import Trainer
from lightning.pytorch.strategies import DDPStrategy

from lit_rpe.eval.settings import EvalSettings
from lit_rpe.training.callbacks import ResolutionEvalCallback
from lit_rpe.training.callbacks.eval_history import EvalHistory


def main() -> None:
    shards, out, devices = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    weights = sys.argv[4] if len(sys.argv) > 4 else None
    warnings.simplefilter("ignore")
    writes = []
    write_csv = EvalHistory.write_csv
    EvalHistory.write_csv = lambda self, path: writes.append(str(path)) or write_csv(self, path)
    # auto: the offline metrics, plus every Inception one when the weight file is given
    settings = EvalSettings(
        resolutions=[16, [16, 32]],
        rules=["rpe2d_even", {"name": "ntk", "timestep_shift": "auto"}],
        num_images=10,
        batch_size=2,
        val_shards=shards,
        val_loss_images=8,
        val_loss_t=2,
        metrics="auto",
        inception_weights=weights,
        reference_cache=str(out / "refs"),
        fid_method="eigh",
    )
    callback = ResolutionEvalCallback(settings, every_n_steps=1)
    # a collective that waits more than a minute means a hang: fail instead of waiting 30 min
    strategy = (
        DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=60))
        if devices > 1
        else "auto"
    )
    trainer = Trainer(
        default_root_dir=out,
        max_steps=2,
        accelerator="cpu",
        devices=devices,
        strategy=strategy,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    trainer.fit(training_module(lr=0.0), datamodule=RandomImages())
    record = {"history": callback.history.state_dict()["rows"], "writes": writes}
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
