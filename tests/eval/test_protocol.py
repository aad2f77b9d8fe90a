"""The protocol card: its fields for pixel and latent models, its JSON round trip, which changes
void a finished cell, the shared card of many cells, and the provenance helpers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import write_shard_set
from safetensors.torch import load_file, save_file

import lit_rpe.provenance as provenance
from lit_rpe.eval.metrics.references import dataset_key
from lit_rpe.eval.protocol import (
    DEFINING_FIELDS,
    ProtocolCard,
    ReferenceInfo,
    adm_reference,
    build_card,
    changed_settings,
    compare_cards,
    computed_reference,
)
from lit_rpe.models.dit import DiT
from lit_rpe.official.model import OfficialModel
from lit_rpe.posenc import InferenceRule
from lit_rpe.sampling.sampler import RuleNotApplicable
from lit_rpe.sampling.settings import SamplerSettings
from lit_rpe.training.config import NetConfig
from lit_rpe.training.module import DiffusionModule

WEIGHTS = "diffusion_pytorch_model.safetensors"


def pixel_module(**sampling) -> DiffusionModule:
    torch.manual_seed(0)
    return DiffusionModule(
        net=NetConfig(name="DiT-N/2", encoder="rope", train_positions="grid"),
        resolution=16,
        num_classes=3,
        sampling=SamplerSettings(steps=3, method="euler", cfg_scale=2.5, **sampling),
    ).eval()


def latent_module(vae: Path) -> DiffusionModule:
    torch.manual_seed(0)
    return DiffusionModule(
        net=NetConfig(name="DiT-N/2"), resolution=32, num_classes=3, vae_path=str(vae)
    ).eval()


def card_of(module, *, rule=None, resolution=16, reference=None, **options) -> ProtocolCard:
    return build_card(
        module,
        rule=rule or InferenceRule("ntk", timestep_shift="auto"),
        resolution=resolution,
        options=module.sampler_options(**options),
        precision="fp32",
        num_samples=8,
        seed=5,
        reference=reference or ReferenceInfo("val-x", 8),
        inception_tag=None,
    )


@pytest.fixture
def shards(tmp_path) -> list[str]:
    return write_shard_set(tmp_path / "val", num_shards=1, per_shard=8)


def test_card_of_a_pixel_model(shards):
    module = pixel_module(guidance_interval=(0.1, 0.7))
    reference = computed_reference(shards, 16, 8)
    card = card_of(module, resolution=32, reference=reference)
    # the model's own sampler settings, the rule's shift as set and at 32 px: the 16 x 16 token
    # grid against the trained 8 x 8 gives sqrt(256 / 64) = 2
    assert (card.sampler, card.steps, card.cfg_scale) == ("euler", 3, 2.5)
    assert card.guided_channels == "all" and card.guidance_interval == (0.1, 0.7)
    assert card.timestep_shift == "auto" and card.shift_factor == pytest.approx(2.0)
    assert (card.vae, card.vae_sha256, card.latent_scale) == ("pixels", "", 1.0)
    assert (card.num_samples, card.seed, card.precision) == (8, 5, "fp32")
    assert card.reference == f"{dataset_key(shards)} adm_center" and card.reference_images == 8
    assert card.reference_sha256 == "" and card.inception == "none"
    assert card.torch == torch.__version__ and card.device == provenance.cpu_name()
    assert card.suite_commit == provenance.suite_commit()
    # options given to a call win, a cfg_scale of 0 included; a fixed shift is its own factor
    other = card_of(module, rule=InferenceRule("ntk", timestep_shift=3.0), steps=7, cfg_scale=0.0)
    assert (other.steps, other.cfg_scale, other.sampler) == (7, 0.0, "euler")
    assert other.timestep_shift == 3.0 and other.shift_factor == 3.0
    with pytest.raises(RuleNotApplicable):  # the card checks the cell like the sampler does
        card_of(module, rule=InferenceRule("rpe2d_even"), resolution=32)


def test_card_of_a_latent_model_hashes_its_vae_weights(vae_folder, tmp_path):
    card = card_of(latent_module(vae_folder), resolution=32)
    weights = vae_folder / WEIGHTS
    assert card.vae == str(vae_folder) and card.latent_scale == pytest.approx(0.18215)
    assert card.vae_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    # the checkpoint root (VAE in vae/) is the same VAE
    assert card_of(latent_module(vae_folder.parent), resolution=32).vae_sha256 == card.vae_sha256
    copy = tmp_path / "vae"
    shutil.copytree(vae_folder, copy)
    assert card_of(latent_module(copy), resolution=32).vae_sha256 == card.vae_sha256
    state = load_file(copy / WEIGHTS)
    name = next(iter(state))
    state[name] = state[name] + 1e-3
    save_file(state, copy / WEIGHTS)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "scaling_factor": 0.13025}))
    changed = card_of(latent_module(copy), resolution=32)
    assert changed.vae_sha256 != card.vae_sha256 and changed.latent_scale == pytest.approx(0.13025)
    assert changed_settings(card.as_dict(), changed) == ["vae_sha256", "latent_scale"]


def test_official_dit_guides_three_channels(vae_folder):
    net = DiT.from_name(
        "DiT-N/2", input_size=4, in_channels=4, num_classes=3, learn_sigma=True, time_scale=1.0
    )
    dit = OfficialModel(net, "dit", vae_path=str(vae_folder))
    card = card_of(dit, rule=InferenceRule("ntk"), resolution=32)
    assert (card.sampler, card.steps, card.cfg_scale) == ("ddpm", 250, 1.5)
    assert card.guided_channels == "first 3" and card.latent_scale == pytest.approx(0.18215)
    every = OfficialModel(net, "dit", vae_path=str(vae_folder), cfg_channels="all")
    assert card_of(every, rule=InferenceRule("ntk"), resolution=32).guided_channels == "all"
    with pytest.raises(ValueError, match="vae_path"):
        card_of(OfficialModel(net, "dit"), rule=InferenceRule("ntk"), resolution=32)


def test_json_round_trip_and_a_bad_card():
    card = card_of(pixel_module(guidance_interval=(0.0, 0.5)))
    assert ProtocolCard.from_dict(json.loads(json.dumps(card.as_dict()))) == card
    row = card.as_row()
    assert row["guidance_interval"] == "[0.0, 0.5]" and row["vae"] == "pixels"
    assert card_of(pixel_module()).as_row()["guidance_interval"] == "none"
    stored = card.as_dict()
    del stored["seed"]
    with pytest.raises(ValueError, match=r"missing \['seed'\]"):
        ProtocolCard.from_dict({**stored, "colour": 1})
    assert changed_settings(stored, card) == ["protocol"]  # an unreadable card: score again
    assert changed_settings(None, card) == ["protocol"]


def test_only_settings_that_define_the_numbers_void_a_finished_cell():
    card = card_of(pixel_module())
    moved = dataclasses.replace(
        card, vae="elsewhere", suite_commit="0000000-dirty", torch="9.9", device="other",
        reference_sha256="f" * 64,
    )  # fmt: skip
    assert changed_settings(card.as_dict(), moved) == []
    for field, value in (("precision", "bf16"), ("steps", 50), ("seed", 1), ("num_samples", 9),
                         ("reference", "val-y adm_center"), ("cfg_scale", 1.0),
                         ("guidance_interval", (0.1, 0.2)), ("inception", "1234abcd")):  # fmt: skip
        assert field in DEFINING_FIELDS
        assert changed_settings(card.as_dict(), dataclasses.replace(card, **{field: value})) == [
            field
        ]


def test_compare_cards_finds_the_shared_card_and_each_difference():
    card = card_of(pixel_module())
    bf16 = dataclasses.replace(card, precision="bf16", steps=10)
    shifted = dataclasses.replace(card, timestep_shift=3.0, shift_factor=3.0)  # per cell
    comparison = compare_cards([card, bf16, shifted, None, card])
    assert comparison.shared["precision"] == "fp32" and comparison.shared["steps"] == 3
    assert "shift_factor" not in comparison.shared and "reference_sha256" not in comparison.shared
    assert comparison.differences == [
        {},
        {"steps": 10, "precision": "bf16"},
        {},
        {"protocol": "not recorded"},
        {},
    ]
    assert compare_cards([]).shared == {}


def test_adm_reference_reads_the_count_without_the_images(tmp_path):
    path = tmp_path / "VIRTUAL_tiny.npz"
    eye = np.eye(3)
    np.savez(path, arr_0=np.zeros((5, 4, 4, 3), np.uint8), mu=np.zeros(3), sigma=eye,
             mu_s=np.zeros(3), sigma_s=eye)  # fmt: skip
    info = adm_reference(path)
    assert info.source == "ADM VIRTUAL_tiny.npz" and info.images == 5
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_computed_reference_hashes_its_statistics_file_once_it_exists(shards, tmp_path):
    from lit_rpe.eval.metrics.references import reference_cache_path

    info = computed_reference(shards, 16, 8, cache_dir=tmp_path / "refs", weights_tag="abcd")
    assert info.sha256 == "" and info.images == 8
    path = reference_cache_path(tmp_path / "refs", shards, 16, 8, "abcd")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"statistics")
    info = computed_reference(shards, 16, 8, cache_dir=tmp_path / "refs", weights_tag="abcd")
    assert info.sha256 == hashlib.sha256(b"statistics").hexdigest()


def test_suite_commit_is_the_checkouts_or_unknown(tmp_path, monkeypatch):
    root = provenance.PACKAGE_DIR.parent
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    commit = provenance.suite_commit()
    assert commit in (head, f"{head}-dirty") and head
    assert provenance.suite_commit() is commit  # computed once per process
    uncached = provenance.suite_commit.__wrapped__
    monkeypatch.setattr(provenance, "PACKAGE_DIR", tmp_path / "site-packages" / "lit_rpe")
    (tmp_path / "site-packages" / "lit_rpe").mkdir(parents=True)
    assert uncached() == "unknown"  # not a checkout (tmp_path is in none)
    monkeypatch.setattr(provenance, "PACKAGE_DIR", provenance.Path(provenance.__file__).parent)

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    assert uncached() == "unknown"


def test_file_hash_follows_a_rewritten_file(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"one")
    assert provenance.file_sha256(path) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"two!")
    assert provenance.file_sha256(path) == hashlib.sha256(b"two!").hexdigest()
    assert provenance.device_name("cpu") == provenance.cpu_name() != ""


def test_a_reference_set_behind_urls_is_keyed_without_touching_the_network():
    """Validation shards on a server name their reference cache from the URLs alone (a stat of
    the URL as a local path failed before), and another set of URLs gets another key."""
    urls = "http://127.0.0.1:9/imagenet/val/val-{000000..000003}.tar"
    key = dataset_key(urls)
    assert key.startswith("val-") and key == dataset_key(urls)
    assert dataset_key("s3://bucket/imagenet/val/val-{000000..000002}.tar") != key
    assert dataset_key("pipe:cat /data/val-000000.tar").split("-")[-1] != key.split("-")[-1]
