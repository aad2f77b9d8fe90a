"""The precision policy: auto follows the bf16 probe, explicit choices stay, emulated bf16 warns."""

import io
import json
import sys
import tarfile
import warnings
from pathlib import Path

import pytest
import torch

from lit_rpe import precision
from lit_rpe.precision import Bf16Support, cpu_bf16_support, resolve_precision
from lit_rpe.training.cli import LitRPECLI, LitRPETrainer, main
from lit_rpe.training.config import NetConfig
from lit_rpe.training.data import ImageShardDataModule
from lit_rpe.training.experiments import EXPERIMENTS_DIR, expand_config_args
from lit_rpe.training.module import DiffusionModule


@pytest.fixture(autouse=True)
def fresh_warning():
    precision._warn_emulated_bf16.cache_clear()
    yield
    precision._warn_emulated_bf16.cache_clear()


def patch_probe(monkeypatch, native: bool) -> None:
    support = Bf16Support(native, "patched probe")
    monkeypatch.setattr(precision, "bf16_support", lambda device_type: support)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_auto_is_bf16_with_native_support_and_fp32_without(monkeypatch, device):
    patch_probe(monkeypatch, native=True)
    chosen = resolve_precision("auto", device)
    assert (chosen.name, chosen.lightning, chosen.autocast_dtype) == (
        "bf16",
        "bf16-mixed",
        torch.bfloat16,
    )
    assert "native bf16" in chosen.reason and "patched probe" in chosen.reason
    patch_probe(monkeypatch, native=False)
    chosen = resolve_precision("auto", device)
    assert (chosen.name, chosen.lightning, chosen.autocast_dtype) == ("fp32", "32-true", None)
    assert "no native bf16" in chosen.reason


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize(
    ("requested", "name"),
    [("fp32", "fp32"), ("32", "fp32"), (32, "fp32"), ("32-true", "fp32"), ("bf16", "bf16")]
    + [("bf16-mixed", "bf16")],
)
def test_an_explicit_precision_is_kept_whatever_the_probe(monkeypatch, native, requested, name):
    patch_probe(monkeypatch, native)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert resolve_precision(requested, "cpu").name == name


def test_explicit_bf16_without_native_support_warns_once(monkeypatch):
    patch_probe(monkeypatch, native=False)
    with pytest.warns(UserWarning, match=r"no native bf16 \(patched probe\).*20x slower"):
        chosen = resolve_precision("bf16-mixed", "cpu")
    assert chosen.name == "bf16" and "emulated" in chosen.reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise here
        resolve_precision("bf16", "cpu")


def test_no_warning_for_native_bf16_or_fp32(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        patch_probe(monkeypatch, native=True)
        resolve_precision("bf16", "cpu")
        patch_probe(monkeypatch, native=False)
        resolve_precision("fp32", "cpu")
        resolve_precision("auto", "cpu")


def test_unknown_precision_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown precision 'fp16'; valid: auto, bf16"):
        resolve_precision("fp16", "cpu")


def patch_cpu(monkeypatch, *, avx512_bf16: bool, amx: bool, onednn: bool, capability: str):
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "onednn", "capability", "native"),
    [
        (True, False, True, "AVX512", True),  # AMD Zen 4, Cooper Lake
        (False, True, True, "AVX512", True),  # Sapphire Rapids and later (AMX)
        (False, False, True, "AVX512", False),  # AVX-512 without bf16: oneDNN emulates it
        (False, False, False, "AVX2", False),  # most laptops
        (True, False, False, "AVX2", False),  # ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
        (True, False, True, "AVX2", False),  # ATen kernels limited to AVX2
    ],
)
def test_cpu_probe_needs_bf16_instructions_and_avx512_kernels(
    monkeypatch, avx512_bf16, amx, onednn, capability, native
):
    patch_cpu(monkeypatch, avx512_bf16=avx512_bf16, amx=amx, onednn=onednn, capability=capability)
    support = cpu_bf16_support()
    assert support.native is native
    assert support.detail  # the log line says what the answer rests on


def test_cpu_probe_falls_back_to_the_cpu_flags_without_torchs_private_probes(monkeypatch):
    patch_cpu(monkeypatch, avx512_bf16=False, amx=False, onednn=True, capability="AVX512")
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert cpu_bf16_support().native
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert not cpu_bf16_support().native


@pytest.mark.parametrize("native", [True, False])
def test_trainer_resolves_auto_before_lightning_sees_it(monkeypatch, native, tmp_path):
    patch_probe(monkeypatch, native)
    trainer = LitRPETrainer(
        precision="auto", accelerator="cpu", logger=False, default_root_dir=str(tmp_path)
    )
    assert trainer.precision == ("bf16-mixed" if native else "32-true")
    assert trainer.resolved_precision.name == ("bf16" if native else "fp32")


def tiny_shards(folder: Path) -> str:
    """One non-empty shard plus classes.json: what the data module checks when it is built."""
    folder.mkdir(parents=True)
    with tarfile.open(folder / "shard-000000.tar", "w") as tar:
        info = tarfile.TarInfo("s0.cls")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"0"))
    (folder / "classes.json").write_text(json.dumps({"a": 0, "b": 1}))
    return str(folder)


@pytest.mark.parametrize("native", [True, False])
def test_cli_resolves_precision_auto_into_the_trainer(monkeypatch, native, tmp_path):
    patch_probe(monkeypatch, native)
    monkeypatch.setattr(sys, "argv", ["lit-rpe"])  # not pytest's own arguments
    shards = tiny_shards(tmp_path / "shards")
    args = [
        "--config",
        str(EXPERIMENTS_DIR / "demo.yaml"),
        "--trainer.precision",
        "auto",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        f"--data.train_shards={shards}",
        f"--data.val_shards={shards}",
        "--model.net.name=DiT-N/2",
    ]
    cli = LitRPECLI(
        DiffusionModule,
        ImageShardDataModule,
        trainer_class=LitRPETrainer,
        args=expand_config_args(args),
        run=False,
        parser_kwargs={"parser_mode": "omegaconf"},
    )
    assert cli.trainer.precision == ("bf16-mixed" if native else "32-true")


def test_cli_parses_precision_auto_and_refuses_unknown_values(capsys):
    demo = str(EXPERIMENTS_DIR / "demo.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", demo, "--trainer.precision", "auto", "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "  precision: auto\n" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", demo, "--trainer.precision", "fp16", "--print_config"])
    assert exit_info.value.code != 0
    assert "trainer.precision" in capsys.readouterr().err


@pytest.mark.parametrize("native", [True, False])
def test_checkpoints_record_the_precision_they_were_trained_in(monkeypatch, native, tmp_path):
    patch_probe(monkeypatch, native)
    module = DiffusionModule(net=NetConfig(name="DiT-N/2"), resolution=16, num_classes=5)
    module.trainer = LitRPETrainer(accelerator="cpu", logger=False, default_root_dir=str(tmp_path))
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "last.ckpt")
    expected = "bf16-mixed" if native else "32-true"
    assert precision.trained_precision(tmp_path / "last.ckpt") == expected
    assert precision.trained_precision(tmp_path / "missing.ckpt") == "unknown (no checkpoint)"


def test_accelerator_argument_gives_the_device_type_probed():
    from lightning.pytorch.accelerators import CPUAccelerator

    assert precision.accelerator_device_type("cpu") == "cpu"
    assert precision.accelerator_device_type("gpu") == "cuda"
    assert precision.accelerator_device_type(CPUAccelerator()) == "cpu"
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else ("mps" if torch.backends.mps.is_available() else "cpu")
    )
    assert precision.accelerator_device_type("auto") == expected
