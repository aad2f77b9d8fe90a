"""The evaluation code on a CUDA device gives the CPU's numbers (skipped without a GPU)."""

import pytest
import torch
from eval_fixtures import calibrated_inception_state_dict, image_swd, photo_crops

from lit_rpe.eval.metrics import (
    FeatureStatistics,
    FIDInceptionV3,
    InceptionScoreAccumulator,
    precision_recall,
    resize_bilinear_tf1,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def compare_devices(device: str) -> None:
    """Every device-dependent path, on ``device`` against the CPU."""
    images = photo_crops(4, 64, seed=0)
    x = torch.rand(2, 3, 17, 23)
    torch.testing.assert_close(
        resize_bilinear_tf1(x.to(device), (299, 299)).cpu(), resize_bilinear_tf1(x, (299, 299))
    )
    # float64 on both sides: cuDNN's default TF32 convolutions only apply to float32.
    net = FIDInceptionV3(calibrated_inception_state_dict()).double()
    on_cpu = net(images)
    on_device = net.to(device)(images.to(device))
    for key, value in on_cpu.items():
        assert on_device[key].device.type == torch.device(device).type
        torch.testing.assert_close(on_device[key].cpu(), value, rtol=1e-5, atol=1e-6)
    stats = FeatureStatistics(2048, device=device).update(on_device["pool"])
    torch.testing.assert_close(
        stats.covariance().cpu(), FeatureStatistics(2048).update(on_cpu["pool"]).covariance()
    )
    acc = InceptionScoreAccumulator(total=4, splits=2, device=device)
    acc.update(on_device["logits_unbiased"], torch.arange(4, device=device))
    assert acc.compute().mean > 0
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(50, 8, generator=g), torch.randn(40, 8, generator=g) + 0.5
    assert precision_recall(real.to(device), fake.to(device)) == precision_recall(real, fake)
    blurred = images.flip(-1)
    swd_device = image_swd(images.to(device), blurred.to(device))
    swd_cpu = image_swd(images, blurred)
    assert swd_device.per_level == pytest.approx(swd_cpu.per_level, rel=1e-3)


def test_cuda_matches_cpu():
    compare_devices("cuda")
