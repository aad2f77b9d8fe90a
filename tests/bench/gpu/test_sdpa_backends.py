"""Detection of the SDPA kernel a model really runs, and the per-backend probe."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from bench.gpu.sdpa_backends import (
    backend_of_kernel,
    classify_events,
    observed_backends,
    probe_backends,
)
from lit_rpe.models import DiT


@pytest.mark.parametrize(
    "names, backends",
    [
        (["aten::linear", "aten::_scaled_dot_product_flash_attention"], ["flash"]),
        (["aten::_scaled_dot_product_flash_attention_for_cpu_backward"], ["flash"]),
        (["aten::_scaled_dot_product_efficient_attention"], ["efficient"]),
        (["aten::_scaled_dot_product_cudnn_attention"], ["cudnn"]),
        (["aten::scaled_dot_product_attention", "aten::_scaled_dot_product_attention_math"],
         ["math"]),
        (["aten::addmm", "aten::softmax"], []),
    ],
)  # fmt: skip
def test_backends_are_read_off_the_aten_operators(names, backends):
    assert classify_events(names) == backends


@pytest.mark.parametrize(
    "kernel, backend",
    [
        ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<96, 128>>", "flash"),
        ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel)",
         "efficient"),
        ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x64", "cudnn"),
        ("ampere_bf16_s16816gemm_bf16_128x128_ldg8_f2f_stages_32x5_nn", None),
    ],
)  # fmt: skip
def test_cuda_kernel_names_are_the_fallback(kernel, backend):
    assert backend_of_kernel(kernel) == backend
    assert classify_events([kernel]) == ([backend] if backend else [])


def tiny_forward():
    torch.manual_seed(0)
    net = DiT.from_name("DiT-N/2", input_size=8, in_channels=4, encoder="rope").eval()
    x, t, y = torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([1, 2])
    return lambda: net(x, t, y)


def test_the_model_is_seen_using_the_fused_cpu_kernel():
    # fp32 on a CPU without a mask: PyTorch picks its flash kernel for CPU.
    assert observed_backends(tiny_forward(), "cpu") == ["flash"]


def test_forcing_the_math_backend_is_seen():
    forward = tiny_forward()

    def under_math():
        with sdpa_kernel([SDPBackend.MATH]):
            forward()

    assert observed_backends(under_math, "cpu") == ["math"]


def test_probe_times_the_backends_that_accept_the_inputs():
    found = probe_backends(
        batch=2, heads=2, tokens=16, head_dim=32, dtype=torch.float32, device="cpu", repeats=1
    )
    assert list(found) == ["flash", "cudnn", "efficient", "math"]
    for name in ("flash", "math"):
        assert found[name]["ok"] and found[name]["ms"] > 0
    for name in ("cudnn", "efficient"):  # CUDA-only kernels
        assert not found[name]["ok"] and found[name]["ms"] is None and found[name]["reason"]
