"""SampleGridCallback draws where training ran: on the module's device, before Lightning's
teardown moves it back to the CPU, and in the run's precision (bf16 autocast under bf16-mixed)."""

from __future__ import annotations

import torch
from callback_fixtures import fit, training_module
from PIL import Image

from lit_rpe.training.callbacks import SampleGridCallback


def test_end_of_training_grids_are_drawn_before_teardown_in_the_run_precision(tmp_path):
    module = training_module()
    draws, events = [], []
    sample = module.sample

    def observed_sample(*args, **kwargs):  # the Sampler interface the callback draws through
        draws.append(
            dict(
                device=module.device,
                autocast=torch.is_autocast_enabled("cpu"),
                dtype=torch.get_autocast_dtype("cpu"),
                torn_down="teardown" in events,
            )
        )
        return sample(*args, **kwargs)

    module.sample = observed_sample

    class RecordTeardown(SampleGridCallback):
        def setup(self, trainer, pl_module, stage):
            super().setup(trainer, pl_module, stage)
            teardown = trainer.strategy.teardown  # moves the module to the CPU on a GPU run

            def recorded():
                events.append("teardown")
                teardown()

            trainer.strategy.teardown = recorded

    callback = RecordTeardown(every_n_steps=0, num_images=2, scales=[1.0])
    fit(tmp_path, callback, steps=2, module=module, precision="bf16-mixed")
    assert events == ["teardown"]  # the test saw the end of the fit
    assert draws == [
        dict(device=torch.device("cpu"), autocast=True, dtype=torch.bfloat16, torn_down=False)
    ]
    [path] = callback.saved
    assert path.name == "step0000002_16x16.png" and Image.open(path).mode == "RGB"
