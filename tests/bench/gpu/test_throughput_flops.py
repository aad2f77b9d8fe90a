"""FLOP counting and MFU of bench/gpu/throughput.py: the DiT paper's figures, the peak table,
the units."""

import pytest

from bench.gpu.peaks import GpuPeak, gpu_peak
from bench.gpu.throughput import dit_forward_flops, step_flops, utilisation

# DiT paper (Peebles & Xie 2023), Gflops per forward pass, counted as multiply-adds.
PAPER_GFLOPS_256 = {
    "DiT-S/2": 6.06,
    "DiT-B/2": 23.01,
    "DiT-L/2": 80.71,
    "DiT-XL/4": 29.05,
    "DiT-XL/2": 118.64,
}


@pytest.mark.parametrize("model", PAPER_GFLOPS_256)
def test_forward_flops_match_the_dit_paper_at_256_px(model):
    macs = dit_forward_flops(model, 256) / 2  # ours are FLOPs = 2 x multiply-adds
    assert macs / 1e9 == pytest.approx(PAPER_GFLOPS_256[model], rel=5e-3)


def test_dit_xl2_at_512_px_matches_the_paper():
    assert dit_forward_flops("DiT-XL/2", 512) / 2e9 == pytest.approx(524.6, rel=5e-3)


def test_attention_term_grows_with_the_square_of_the_tokens():
    # 4x the tokens: linear layers cost 4x, the two attention matrix products 16x.
    small, large = dit_forward_flops("DiT-XL/2", 256), dit_forward_flops("DiT-XL/2", 512)
    depth, d = 28, 1152
    attention = {n: depth * 2 * 2 * n * n * d for n in (256, 1024)}  # FLOPs of QK^T and AV
    linear_small = small - attention[256]
    assert large - attention[1024] == pytest.approx(4 * linear_small, rel=2e-3)


def test_a_training_step_counts_three_forwards_and_sampling_one():
    forward = dit_forward_flops("DiT-XL/2", 256)
    assert step_flops("train", forward, 32) == 3 * 32 * forward
    assert step_flops("sample", forward, 32) == 32 * forward


def test_utilisation_is_achieved_flops_over_the_peak():
    # 1e15 FLOPs in 2.5 s on a 989.4 TFLOP/s device: 400 TFLOP/s, 40.4 %.
    assert utilisation(1e15, 2.5, 989.4) == pytest.approx(400 / 989.4)
    assert utilisation(1e15, 2.5, None) is None


@pytest.mark.parametrize(
    "name, memory_gib, variant, peak",
    [
        ("NVIDIA H200", 140.4, "H200 SXM", 989.4),
        ("NVIDIA H200 NVL", 140.4, "H200 NVL", 835.0),
        ("NVIDIA GH200 480GB", 94.5, "GH200", 989.4),
        ("NVIDIA H100 80GB HBM3", 79.1, "H100 SXM", 989.4),
        ("NVIDIA H100 PCIe", 79.1, "H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 93.1, "H100 NVL", 835.0),
        ("NVIDIA H100", 93.1, "H100 NVL", 835.0),  # only its memory says NVL
        ("NVIDIA H20", 95.0, "H20", 148.0),
        ("NVIDIA A100-SXM4-80GB", 79.1, "A100", 312.0),
        ("NVIDIA L40", 44.4, "L40", 181.0),
        ("NVIDIA L40S", 44.4, "L40S", 362.1),
        ("NVIDIA L4", 22.0, "L4", 121.0),
    ],
)
def test_the_variant_is_named_from_the_device_name_and_memory(name, memory_gib, variant, peak):
    assert gpu_peak(name, memory_gib) == GpuPeak(variant, peak)


def test_unknown_devices_have_no_peak():
    assert gpu_peak("Some Accelerator 9000", 80.0) is None
