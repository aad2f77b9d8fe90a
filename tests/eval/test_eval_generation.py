"""Seed-indexed generation: the same images from 1 and from 2 processes, resumable, ADM export."""

import multiprocessing as mp

import numpy as np
import pytest
import torch
from PIL import Image

from lit_rpe.eval.generation import chunks_of_rank, generate_to_folder
from lit_rpe.posenc import InferenceRule
from lit_rpe.sampling.settings import SamplerSettings
from lit_rpe.training.config import NetConfig
from lit_rpe.training.module import DiffusionModule

NUM, BATCH, RES = 10, 4, 24


def tiny_module() -> DiffusionModule:
    torch.manual_seed(0)
    module = DiffusionModule(
        net=NetConfig(name="DiT-N/2", encoder="rope", train_positions="rpe2d"),
        resolution=16,
        num_classes=3,
        sampling=SamplerSettings(steps=3, method="heun"),
    )
    with torch.no_grad():  # leave the all-zero adaLN start so images depend on the weights
        for p in module.ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return module.eval()


def generate(out, rank, world):
    torch.set_num_threads(1)
    generate_to_folder(
        tiny_module(),
        out,
        num_images=NUM,
        resolution=RES,
        batch_size=BATCH,
        rule=InferenceRule("rpe2d_random"),
        rank=rank,
        world_size=world,
        seed=7,
    )


@pytest.mark.parametrize(
    "num,batch,world", [(10, 4, 2), (10, 4, 3), (7, 7, 2), (1, 4, 4), (33, 8, 4)]
)
def test_ranks_partition_the_indices(num, batch, world):
    seen = [
        i for r in range(world) for chunk in chunks_of_rank(num, batch, r, world) for i in chunk
    ]
    assert sorted(seen) == list(range(num))


@pytest.mark.ddp
def test_one_and_two_processes_give_bit_identical_images(tmp_path):
    threads = torch.get_num_threads()
    try:  # same single-threaded kernels as the spawned ranks
        generate(tmp_path / "one", 0, 1)
    finally:
        torch.set_num_threads(threads)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=generate, args=(tmp_path / "two", r, 2)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    for i in range(NUM):
        a = np.asarray(Image.open(tmp_path / "one" / f"{i:06d}.png"))
        b = np.asarray(Image.open(tmp_path / "two" / f"{i:06d}.png"))
        assert a.shape == (RES, RES, 3) and np.array_equal(a, b), f"image {i} differs"
    first = np.asarray(Image.open(tmp_path / "one" / "000000.png"))
    assert not np.array_equal(first, np.asarray(Image.open(tmp_path / "one" / "000001.png")))


def test_rerun_generates_only_missing_images(tmp_path, monkeypatch):
    module = tiny_module()
    generate_to_folder(module, tmp_path, num_images=6, resolution=16, batch_size=4)
    (tmp_path / "000005.png").unlink()
    calls = []
    sample = module.sample
    monkeypatch.setattr(
        module,
        "sample",
        lambda labels, seeds, **kw: calls.append(seeds) or sample(labels, seeds, **kw),
    )
    generate_to_folder(module, tmp_path, num_images=6, resolution=16, batch_size=4)
    assert calls == [[4, 5]]  # only the chunk holding the missing image
    with pytest.raises(ValueError, match="labels for"):
        generate_to_folder(module, tmp_path, num_images=6, resolution=16, labels=[0, 1])
