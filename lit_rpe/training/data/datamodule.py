"""``ImageShardDataModule``: class-conditional image batches streamed from WebDataset shards.

Batches are dicts (see ``lit_rpe.training.data.samples``): ``image`` (B, C, H, W) float32 in
[-1, 1] (or latents with ``precomputed_latents``), ``label`` (B,) int64, ``box`` (B, 4) float32
crop box, ``key`` list of str, ``corrupt`` (B,) int64.

Epochs and resuming. The train stream of an epoch is a function of (seed, epoch, rank, worker).
The epoch is read when the train loader is iterated: ``trainer.current_epoch`` under Lightning,
otherwise the value given to ``set_epoch``. ``state_dict()`` records the stream's own epoch and
how many batches of it this rank has consumed (``trainer.fit_loop``'s processed-batch counter, or
the batches handed out when no trainer is attached); after ``load_state_dict()`` the first
iteration continues that stream epoch after exactly those batches, whatever Lightning calls the
epoch then (a ``last.ckpt`` written at ``max_steps`` mid-epoch comes after Lightning marked the
epoch complete; ``epoch_offset`` keeps the stream's epochs apart from Lightning's). Exact
continuation needs the same world size, workers, batch size, seed and samples per epoch (a
warning says so otherwise).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule

from lit_rpe.distributed import rank_and_world
from lit_rpe.resolution import LATENT_FACTOR, as_height_width
from lit_rpe.training.data.latent_transforms import LatentCropWithBox
from lit_rpe.training.data.loader import StreamLoader
from lit_rpe.training.data.read_config import ShardReadConfig
from lit_rpe.training.data.samples import CropTransform, SampleDecoder
from lit_rpe.training.data.shard_list import (
    expand_shards,
    read_classes,
    read_manifest,
    shard_sample_counts,
)
from lit_rpe.training.data.shard_source import ShardSource
from lit_rpe.training.data.stream import ShardStream
from lit_rpe.training.data.stream_plan import rank_batch_sizes
from lit_rpe.training.data.transforms import CenterCropWithBox, RandomResizedCropWithBox
from lit_rpe.training.data.validation_images import validation_stream

log = logging.getLogger(__name__)

_RESUME_KEYS = ("world_size", "num_workers", "batch_size", "seed", "samples_per_epoch")


class ImageShardDataModule(LightningDataModule):
    """Streams ``{key}.jpg|png`` + ``{key}.cls`` shards (or ``{key}.latent.npy`` latent shards).

    Args:
        train_shards: shard path, brace pattern, glob, folder, or a list of these.
        val_shards: the same for validation; ``None`` disables validation.
        resolution: crop size in pixels, int or (height, width).
        batch_size: batch size per rank; ``val_batch_size`` for validation (default: the same).
        num_workers: DataLoader worker processes per rank.
        shuffle_buffer: samples in each worker's shuffle buffer (raw bytes, ~100 KB each).
        samples_per_epoch: samples per epoch over all ranks (default: the train set size);
            each rank yields ``samples_per_epoch // (world_size * batch_size)`` batches.
        val_samples: validation samples over all ranks (default: the whole set).
        augmentation: ``random_resized_crop`` (RPE-2D) or ``center_crop`` (ADM crop + flip,
            DiT's augmentation). Validation always uses the ADM centre crop without flip.
        max_zoom: RPE-2D's zoom range, ``u ~ U[1, max_zoom]``.
        hflip: random horizontal flips in training.
        seed: seed of the shard order, the shuffle buffers and the crops.
        fast_decode: JPEG draft-mode decoding at the smallest sufficient DCT scale.
        num_classes, classes_file: override / locate ``classes.json`` (default: beside the
            first train shard or in its parent folder).
        precomputed_latents: the shards hold VAE latents (``precompute_latents``); crops are
            cut in latent space and ``image`` holds latents.
        latent_downsample: pixels per latent cell (default: from the latent shards' manifest).
        read: how shards are read: timeouts, retries and the local cache of shards behind URLs,
            the limit on skipped samples (``ShardReadConfig``; ``--data.read.retries=8``).
    """

    def __init__(
        self,
        train_shards: str | list[str],
        val_shards: str | list[str] | None = None,
        resolution: int | tuple[int, int] = 256,
        batch_size: int = 32,
        num_workers: int = 4,
        shuffle_buffer: int = 1000,
        samples_per_epoch: int | None = None,
        val_samples: int | None = None,
        val_batch_size: int | None = None,
        augmentation: Literal["random_resized_crop", "center_crop"] = "random_resized_crop",
        max_zoom: float = 1.5,
        hflip: bool = True,
        seed: int = 0,
        fast_decode: bool = True,
        num_classes: int | None = None,
        classes_file: str | None = None,
        precomputed_latents: bool = False,
        latent_downsample: int | None = None,
        read: ShardReadConfig = ShardReadConfig(),
    ):
        super().__init__()
        self.resolution = as_height_width(resolution)
        for name, value in (
            ("batch_size", batch_size),
            ("val_batch_size", val_batch_size or 1),
            ("samples_per_epoch", samples_per_epoch or 1),
            ("val_samples", val_samples or 1),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if num_workers < 0 or shuffle_buffer < 0 or seed < 0:
            raise ValueError("num_workers, shuffle_buffer and seed must be >= 0")
        if augmentation not in ("random_resized_crop", "center_crop"):
            raise ValueError(f"unknown augmentation {augmentation!r}")
        if max_zoom < 1.0:
            raise ValueError(f"max_zoom must be >= 1, got {max_zoom}")
        # num_classes is also the (linked) module hparam; an override of None here would clash.
        # read: how to reach the data, not what was trained on; and a dataclass in a checkpoint
        # would make torch's weights-only loader refuse the file wherever this class is unknown.
        self.save_hyperparameters(ignore=["num_classes", "read"])
        self.train_shards, self.val_shards = train_shards, val_shards
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.num_workers, self.shuffle_buffer = num_workers, shuffle_buffer
        self.samples_per_epoch, self.val_samples = samples_per_epoch, val_samples
        self.augmentation, self.max_zoom, self.hflip = augmentation, max_zoom, hflip
        self.seed, self.fast_decode = seed, fast_decode
        self._num_classes, self.classes_file = num_classes, classes_file
        self.yields_latents = precomputed_latents
        self.latent_downsample = latent_downsample
        self.read = read
        self._expanded: dict[str, list[str]] = {}
        self._sample_counts: dict[str, list[int]] = {}
        self._is_set_up = False
        self._classes: dict[str, int] | None = None
        self._manual_epoch, self._iter_epoch, self._handed_out = 0, 0, 0
        self._epoch_offset = 0  # stream epoch - Lightning epoch (non-zero only after a resume)
        self._resume: dict[str, Any] | None = None

    # ----------------------------------------------------------------- metadata
    @property
    def classes(self) -> dict[str, int]:
        """Class name -> index from ``classes.json``; ``FileNotFoundError`` without one."""
        if self._classes is None:
            self._classes = read_classes(self._paths("train"), self.classes_file, self.read)
        return self._classes

    @property
    def num_classes(self) -> int:
        """Number of classes: the ``num_classes`` argument, else the size of ``classes.json``."""
        if self._num_classes is not None:
            return self._num_classes
        return len(self.classes)

    def _paths(self, split: str) -> list[str]:
        if split not in self._expanded:
            self._expanded[split] = expand_shards(
                self.train_shards if split == "train" else self.val_shards
            )
        return self._expanded[split]

    def _counts(self, split: str) -> list[int]:
        if split not in self._sample_counts:
            self._sample_counts[split] = shard_sample_counts(self._paths(split), config=self.read)
        return self._sample_counts[split]

    def setup(self, stage: str | None = None) -> None:
        """Resolve and count the shards and read the class map, failing early on bad input."""
        splits = ["train"] + (["val"] if self.val_shards is not None else [])
        for split in splits:
            self._counts(split)
        _ = self.num_classes
        if self.yields_latents:
            manifest = read_manifest(Path(self._paths("train")[0]).parent) or {}
            stored = manifest.get("latent", {}).get("downsample")
            if self.latent_downsample is None:
                self.latent_downsample = int(stored or LATENT_FACTOR)
            elif stored is not None and stored != self.latent_downsample:
                raise ValueError(
                    f"latent_downsample={self.latent_downsample} but the shards "
                    f"were encoded with downsample {stored}"
                )
            if any(r % self.latent_downsample for r in self.resolution):
                raise ValueError(
                    f"resolution {self.resolution} is not a multiple of the latent "
                    f"downsample factor {self.latent_downsample}"
                )
        self._is_set_up = True

    # --------------------------------------------------------------- transforms
    def _transform(self, train: bool) -> CropTransform:
        if self.yields_latents:
            size = tuple(r // self.latent_downsample for r in self.resolution)
            random = train and self.augmentation == "random_resized_crop"
            return LatentCropWithBox(size, random=random, hflip=train and self.hflip)
        if train and self.augmentation == "random_resized_crop":
            return RandomResizedCropWithBox(
                self.resolution, self.max_zoom, self.hflip, self.fast_decode
            )
        return CenterCropWithBox(
            self.resolution, hflip=train and self.hflip, fast_decode=self.fast_decode
        )

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is not None:
            return self.trainer.global_rank, self.trainer.world_size
        return rank_and_world()

    def _loader(self, stream: ShardStream, train: bool) -> StreamLoader:
        budget = self.read.skip_budget(sum(stream.batch_sizes)) if train else None
        # ShardStream plans every worker of every rank, so its length is exact; Lightning's
        # generic caution about IterableDataset lengths does not apply to it.
        warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")
        return StreamLoader(
            stream,
            position=self._train_position if train else None,
            on_batch=self._count_batch if train else None,
            state=self if train else None,
            skip_budget=budget if self.read.max_skipped_fraction < 1 else None,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
        )

    # -------------------------------------------------------------- dataloaders
    def train_dataloader(self) -> StreamLoader:
        if not self._is_set_up:
            self.setup("fit")
        shards, counts = self._paths("train"), self._counts("train")
        rank, world = self._rank_world()
        total = self.samples_per_epoch or sum(counts)
        sizes = rank_batch_sizes(total // world, self.batch_size, drop_last=True)
        if not sizes:
            raise ValueError(
                f"samples_per_epoch={total} gives no full batch of {self.batch_size} "
                f"on each of {world} rank(s)"
            )
        self._check_resume(world)
        decoder = SampleDecoder(self._transform(train=True), self.num_classes, self.yields_latents)
        stream = ShardStream(
            shards,
            counts,
            decoder,
            sizes,
            span=sum(counts),
            rank=rank,
            world_size=world,
            num_workers=self.num_workers,
            seed=self.seed,
            shuffle=True,
            shuffle_buffer=self.shuffle_buffer,
            source=ShardSource(self.read),
        )
        return self._loader(stream, train=True)

    def val_dataloader(self) -> StreamLoader | list:
        if self.val_shards is None:
            return []
        if not self._is_set_up:
            self.setup("validate")
        shards, counts = self._paths("val"), self._counts("val")
        rank, world = self._rank_world()
        decoder = SampleDecoder(self._transform(train=False), self.num_classes, self.yields_latents)
        stream = validation_stream(
            shards,
            counts,
            decoder,
            num_samples=min(self.val_samples or sum(counts), sum(counts)),
            batch_size=self.val_batch_size,
            rank=rank,
            world_size=world,
            num_workers=self.num_workers,
            seed=self.seed,
            source=ShardSource(self.read),
        )
        return self._loader(stream, train=False)

    # ------------------------------------------------------------ epoch / resume
    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next train iteration when no Lightning trainer is attached."""
        self._manual_epoch = int(epoch)

    def _driver_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else self._manual_epoch

    def _train_position(self, num_batches: int) -> tuple[int, int]:
        """(stream epoch, batches to skip) of the iteration starting now. The stream epoch is
        Lightning's (or ``set_epoch``'s) plus an offset that is non-zero only after resuming
        from a checkpoint written after Lightning closed an epoch the stream had not finished
        (the ``last.ckpt`` of a run that reached ``max_steps`` mid-epoch)."""
        driver = self._driver_epoch()
        epoch, skip = driver + self._epoch_offset, 0
        if self._resume is not None:
            saved = int(self._resume["epoch"])
            consumed = int(self._resume["batches_consumed"])
            self._epoch_offset = int(self._resume.get("epoch_offset", 0))
            if consumed < num_batches:
                # continue the saved stream epoch where it stopped, whatever Lightning calls
                # this epoch: a checkpoint written at max_steps, after Lightning marked the
                # epoch complete, resumes in Lightning's next epoch, one past the stream's
                skip = consumed
                self._epoch_offset = saved - driver
                epoch = saved
            else:
                # saved at the end of a stream epoch: the next iteration starts the next one
                # (a checkpoint from before Lightning closed that epoch: Lightning closes it
                # without reading and trains the next one on the iterator it creates now)
                epoch = saved + 1
            self._resume = None
        self._iter_epoch, self._handed_out = epoch, skip
        return epoch, skip

    def _count_batch(self) -> None:
        self._handed_out += 1

    def state_dict(self) -> dict[str, Any]:
        """The stream's own epoch and the batches of it this rank consumed, plus what the
        stream depends on. Consumed batches are Lightning's processed-batch counter when a
        trainer drives the loader (its fetcher reads one batch ahead), else those handed out."""
        if self.trainer is not None:
            consumed = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        else:
            consumed = self._handed_out
        _, world = self._rank_world()
        return {
            "epoch": int(self._iter_epoch),
            "batches_consumed": int(consumed),
            "epoch_offset": self._epoch_offset,
            "world_size": world,
            "num_workers": self.num_workers,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "samples_per_epoch": self.samples_per_epoch,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume: the next iteration continues the saved stream epoch after the batches
        already consumed."""
        self._resume = dict(state_dict)
        if self.trainer is None:
            self._manual_epoch = int(state_dict["epoch"]) - int(state_dict.get("epoch_offset", 0))

    def _check_resume(self, world: int) -> None:
        if self._resume is None:
            return
        now = {
            "world_size": world,
            "num_workers": self.num_workers,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "samples_per_epoch": self.samples_per_epoch,
        }
        changed = [
            f"{k}: {self._resume.get(k)} -> {now[k]}"
            for k in _RESUME_KEYS
            if k in self._resume and self._resume[k] != now[k]
        ]
        if changed:
            log.warning(
                "resuming with a different data setup (%s): skipping %d batches of a "
                "different stream, not an exact continuation",
                ", ".join(changed),
                self._resume["batches_consumed"],
            )
