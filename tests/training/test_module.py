"""The LightningModule: exact resume, EMA, NaN stop, sampling at any resolution (issue 5)."""

import warnings
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.model_summary import summarize
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from lit_rpe.eval.metrics.val_loss import flow_validation_loss
from lit_rpe.posenc import InferenceRule
from lit_rpe.sampling.settings import SamplerSettings
from lit_rpe.training.config import NetConfig, OptimConfig
from lit_rpe.training.module import DiffusionModule, ema_decay_at

RES = 16


class TensorImages(Dataset):
    """A fixed toy image set in the batch format of the data pipeline."""

    def __init__(self, n=64, seed=0, nan_at=None, images_res=RES):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, images_res, images_res, generator=g) * 2 - 1
        if nan_at is not None:
            self.images[nan_at] = float("nan")
        self.labels = torch.randint(0, 4, (n,), generator=g)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        box = torch.tensor([0.1, 0.0, 0.8, 0.8])
        return {
            "image": self.images[i],
            "label": self.labels[i],
            "box": box,
            "corrupt": torch.tensor(0),
            "key": f"img{i:04d}",
        }


class TensorData(LightningDataModule):
    def __init__(self, batch_size=8, **kw):
        super().__init__()
        self.ds, self.batch_size = TensorImages(**kw), batch_size

    def train_dataloader(self):
        return DataLoader(self.ds, batch_size=self.batch_size, shuffle=False)

    def val_dataloader(self):
        return DataLoader(self.ds, batch_size=self.batch_size)


def make_module(resolution=RES, num_classes=4, **kw):
    torch.manual_seed(0)
    net = kw.pop(
        "net",
        NetConfig(name="DiT-N/2", encoder="rope", train_positions="rpe2d", micro_conditioning=True),
    )
    return DiffusionModule(
        net=net,
        resolution=resolution,
        num_classes=num_classes,
        optim=OptimConfig(lr=1e-3, warmup_steps=2),
        ema_decay=0.99,
        sampling=SamplerSettings(steps=3, method="euler"),
        **kw,
    )


def make_trainer(tmp_path, max_steps, **kw):
    return Trainer(
        default_root_dir=tmp_path,
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        deterministic=True,
        enable_progress_bar=False,
        logger=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        enable_model_summary=False,
        **kw,
    )


def test_exact_resume_equals_straight_run(tmp_path):
    n = 4  # 64 images / batch 8 = 8 steps per epoch: this resumes on an epoch boundary (a
    # map-style loader cannot resume mid-epoch; the streaming data module's own test does).
    straight = make_module()
    make_trainer(tmp_path / "a", 2 * n * 2).fit(straight, TensorData())

    ckpt = ModelCheckpoint(dirpath=tmp_path / "b", save_last=True, every_n_train_steps=2 * n)
    first = make_module()
    make_trainer(tmp_path / "b", 2 * n, callbacks=[ckpt]).fit(first, TensorData())
    resumed = make_module()
    trainer = make_trainer(tmp_path / "b", 2 * n * 2)
    trainer.fit(resumed, TensorData(), ckpt_path=str(tmp_path / "b" / "last.ckpt"))

    for a, b in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert a[0] == b[0]
        torch.testing.assert_close(a[1], b[1], rtol=0, atol=0, msg=f"{a[0]} differs")
    assert any(k.startswith("ema.") for k in straight.state_dict())
    opt_a = straight.trainer.optimizers[0].state_dict()["state"]
    opt_b = trainer.optimizers[0].state_dict()["state"]
    for k in opt_a:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(opt_a[k][name], opt_b[k][name], rtol=0, atol=0)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_training_clips_gradients_with_the_fused_adamw_in_every_precision(tmp_path, precision):
    """Every experiment clips; the module clips itself, so bf16-mixed keeps the fused AdamW
    that Lightning's own clipping refuses (and the bare-step benchmarks use)."""
    norms = []

    class GradNorms(Callback):
        def on_train_start(self, trainer, pl_module):
            def record(optimizer, args, kwargs):
                grads = [p.grad for g in optimizer.param_groups for p in g["params"]]
                norms.append(float(torch.linalg.vector_norm(torch.stack(
                    [torch.linalg.vector_norm(g) for g in grads if g is not None]
                ))))  # fmt: skip

            trainer.optimizers[0].register_step_post_hook(record)  # grads kept

    module = make_module()
    trainer = make_trainer(
        tmp_path, 2, gradient_clip_val=1e-3, precision=precision, callbacks=[GradNorms()]
    )
    trainer.fit(module, TensorData())
    assert trainer.global_step == 2
    assert bool(trainer.optimizers[0].defaults["fused"])
    assert len(norms) == 2 and max(norms) <= 1e-3 * (1 + 1e-4)


def test_ema_tracks_weights_with_warmup():
    assert ema_decay_at(0, 0.9999, True) == pytest.approx(0.1)
    assert ema_decay_at(10**6, 0.9999, True) == 0.9999
    assert ema_decay_at(0, 0.9999, False) == 0.9999


def test_ema_differs_from_weights_after_training(tmp_path):
    module = make_module()
    make_trainer(tmp_path, 6).fit(module, TensorData())
    net, ema = dict(module.net.named_parameters()), dict(module.ema.named_parameters())
    assert not all(torch.equal(net[k], ema[k]) for k in net)
    assert all(not p.requires_grad for p in module.ema.parameters())


def test_nan_loss_stops_with_a_message_before_updating(tmp_path):
    module = make_module()
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    with pytest.raises(
        FloatingPointError, match="training loss is nan at step 0.*Last good checkpoint"
    ):
        make_trainer(tmp_path, 4).fit(module, TensorData(nan_at=3))
    for k, v in module.net.state_dict().items():
        assert torch.equal(v, before[k]), "weights changed by a NaN step"


def test_sample_any_resolution_and_rule_is_seeded_per_image():
    module = make_module().eval()
    a = module.sample([0, 1, 2], [5, 6, 7], resolution=(32, 24), rule=InferenceRule("rpe2d_random"))
    b = module.sample([1], [6], resolution=(32, 24), rule=InferenceRule("rpe2d_random"))
    assert a.shape == (3, 3, 32, 24) and a.min() >= -1 and a.max() <= 1
    torch.testing.assert_close(a[1:2], b)
    for rule in ("rpe2d_even", "extrapolate", "dype_yarn"):
        assert module.sample([0], [0], resolution=8, rule=InferenceRule(rule)).shape == (1, 3, 8, 8)


def test_resolution_errors_are_clear():
    module = make_module()
    with pytest.raises(ValueError, match="multiple of 2"):
        module.check_resolution(17)
    with pytest.raises(ValueError, match=r"beyond this model's rpe2d max_len \(32, 32\).*64x64 px"):
        module.check_resolution(128, InferenceRule("rpe2d_even"))
    module.check_resolution(128, InferenceRule("ntk"))  # extrapolating rules have no limit
    with pytest.raises(ValueError, match="multiple of the VAE factor 8"):
        DiffusionModule(net=NetConfig(name="DiT-N/2"), resolution=20, vae_path="nowhere")


def test_validation_step_and_the_grid_validation_loss_share_one_protocol(tmp_path):
    """At the training resolution with the default rule, the logged ``val/loss_ema`` is the eval
    grid's validation loss of the same images: same noise per key, same t grid."""
    module = make_module(val_loss_t=3).eval()
    data = TensorData(n=12, batch_size=5)
    trainer = Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    (logged,) = trainer.validate(module, data.val_dataloader(), verbose=False)
    grid = flow_validation_loss(
        module, data.val_dataloader(), rule=module.default_rule(), num_t=3, seed=0
    )
    assert logged["val/loss_ema"] == pytest.approx(grid["val_loss"], rel=1e-5)
    raw = flow_validation_loss(module, data.val_dataloader(), num_t=3, use_ema=False)
    assert logged["val/loss"] == pytest.approx(raw["val_loss"], rel=1e-5)


def test_loss_is_logged_per_t_bucket(tmp_path):
    module = make_module(loss_buckets=4)
    trainer = make_trainer(tmp_path, 8)
    trainer.fit(module, TensorData())
    buckets = [
        "train/loss_t0.00-0.25",
        "train/loss_t0.25-0.50",
        "train/loss_t0.50-0.75",
        "train/loss_t0.75-1.00",
    ]
    assert set(buckets) <= set(trainer.callback_metrics)
    # 8 steps x 8 samples, uniform t: the bucket means bracket the overall loss
    means = torch.stack([trainer.callback_metrics[k] for k in buckets])
    assert torch.isfinite(means).all() and (means > 0).all()


@pytest.mark.ddp
def test_two_process_cpu_ddp_fit(tmp_path):
    module = make_module()
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_steps=3,
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        enable_progress_bar=False,
        logger=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)],
    )
    trainer.fit(module, TensorData())
    state = torch.load(Path(tmp_path) / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 3
    # the spawned ranks trained the weights that came back: they moved away from the init
    fresh = make_module().net.state_dict()
    moved = [not torch.equal(v, fresh[k]) for k, v in module.net.state_dict().items()]
    assert any(moved)


def test_init_from_copies_weights_into_a_larger_resolution_with_a_fresh_optimizer(tmp_path):
    low = make_module()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "low", save_last=True)
    make_trainer(tmp_path / "low", 5, callbacks=[ckpt]).fit(low, TensorData())
    high = make_module(resolution=2 * RES, init_from=str(tmp_path / "low" / "last.ckpt"))
    assert high.net.train_grid == (2 * low.net.train_grid[0],) * 2
    high.setup("fit")
    for name in ("net", "ema"):
        a, b = getattr(low, name).state_dict(), getattr(high, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} not copied"
    trainer = make_trainer(tmp_path / "high", 1)
    trainer.fit(high, TensorData(images_res=2 * RES))
    steps = {int(s["step"]) for s in trainer.optimizers[0].state_dict()["state"].values()}
    assert steps == {1}  # a fresh optimizer: one step, not 5 + 1


def test_init_from_refuses_a_different_architecture(tmp_path):
    low = make_module()
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    make_trainer(tmp_path, 1, callbacks=[ckpt]).fit(low, TensorData())
    other = make_module(
        net=NetConfig(name="DiT-N/2", encoder="rope"), init_from=str(tmp_path / "last.ckpt")
    )
    with pytest.raises(ValueError, match="does not fit this model"):
        other.setup("fit")
    with pytest.raises(FileNotFoundError, match="init_from checkpoint not found"):
        make_module(init_from=str(tmp_path / "missing.ckpt")).setup("fit")


@pytest.mark.parametrize("every_n", [3, 1000])
def test_exact_resume_mid_epoch_through_the_streaming_data_module(tmp_path, every_n):
    """The real pipeline: photo-set shards, RPE-2D crops, resume in the middle of an epoch.
    every_n 1000: ``last.ckpt`` is written at ``max_steps`` by ``on_train_end``, after Lightning
    marked the cut-short epoch complete (issue 29 item 8)."""
    from lit_rpe.training.data import ImageShardDataModule

    root = Path(__file__).resolve().parents[2] / "data" / "photos"
    if not (root / "classes.json").is_file():
        import subprocess
        import sys

        subprocess.run(
            [sys.executable, str(root.parent / "build_photos.py"), "--no-progress"], check=True
        )

    def data():
        return ImageShardDataModule(
            train_shards=str(root / "train"),
            resolution=RES,
            batch_size=4,
            num_workers=0,
            shuffle_buffer=16,
            samples_per_epoch=400,
            seed=3,
        )

    n = 3  # 100 batches per epoch: the resume happens mid-epoch
    straight = make_module(num_classes=11)
    make_trainer(tmp_path / "a", 2 * n).fit(straight, data())
    ckpt = ModelCheckpoint(dirpath=tmp_path / "b", save_last=True, every_n_train_steps=every_n)
    make_trainer(tmp_path / "b", n, callbacks=[ckpt]).fit(make_module(num_classes=11), data())
    assert torch.load(tmp_path / "b" / "last.ckpt", weights_only=False)["global_step"] == n
    resumed = make_module(num_classes=11)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer(tmp_path / "b", 2 * n).fit(
            resumed, data(), ckpt_path=str(tmp_path / "b" / "last.ckpt")
        )
    # the loader is stateful: no false "dataloader is not resumable" alarm
    assert not [w for w in caught if "not resumable" in str(w.message)]
    for (name, a), (_, b) in zip(
        straight.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"{name} differs")


def test_a_steps_draws_depend_on_seed_rank_and_step_only():
    """What exact resume rests on: the step's generator (on the module's device) is seeded by
    (seed, rank, step) alone, and each sample's draws are fixed by it."""
    module, again = make_module(), make_module()
    assert module._step_generator(5).device == module.device
    draws = [m._step_generator(5).initial_seed() for m in (module, again)]
    assert draws[0] == draws[1] != module._step_generator(6).initial_seed()
    assert make_module(seed=1)._step_generator(5).initial_seed() != draws[0]
    batch = {"image": torch.rand(4, 3, RES, RES) * 2 - 1, "label": torch.tensor([0, 1, 2, 3])}
    batch["box"] = torch.rand(4, 4)
    with torch.no_grad():
        losses = [m.training_step(batch, 0) for m in (module, again, module)]
    assert torch.equal(losses[0], losses[1]) and torch.equal(losses[0], losses[2])


def test_compile_covers_the_ema_that_samples():
    net = NetConfig(name="DiT-N/2", encoder="rope", compile=True)
    module = make_module(net=net)
    for model in (module.net, module.ema):  # compiled in place: lazily, on the first call
        assert all(block._compiled_call_impl is not None for block in model.blocks)
    assert all(not k.startswith("_orig_mod") for k in module.state_dict())


def test_a_run_is_quiet_and_its_summary_counts_real_flops(tmp_path):
    """No LeafSpec FutureWarning (Lightning's data flattening under torch 2.13, filtered in
    setup); the model summary's FLOPs are those of one training-size forward, not 0."""
    module = make_module()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module.net(*module.example_input_array)
    assert summarize(module).total_flops == counter.get_total_flops() > 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer(tmp_path, 1).fit(module, TensorData())
    assert not [w for w in caught if "LeafSpec" in str(w.message)]
