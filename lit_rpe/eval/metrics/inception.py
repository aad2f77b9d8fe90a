"""The TF-compatible FID Inception v3 (graph of 2015-12-05), written without torchvision.

FID, sFID and IS are defined on TensorFlow's ``classify_image_graph_def.pb``. This module
rebuilds that graph layer for layer, with the layer names of torch-fidelity's
``FeatureExtractorInceptionV3`` (which are also torchvision's ``Inception3`` names), so the
standard converted weight files load as they are (see ``inception_weights.py``).

Where the FID graph differs from the Inception v3 of the paper / torchvision:
- every average pool inside the blocks ignores padded zeros (TF's ``avg_pool`` with SAME
  padding), i.e. ``count_include_pad=False``;
- the pool branch of the last block (Mixed_7c, TF's ``mixed_10``) is a 3x3 *max* pool, while
  Mixed_7b keeps the average pool;
- images are resized to 299 x 299 with TF1's bilinear resize (no align-corners, no half-pixel
  centres), then mapped to [-1, 1] as ``(x - 128) / 128``;
- the classifier has 1008 outputs; IS uses its logits without the bias ("logits_unbiased").
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lit_rpe.eval.metrics.inception_weights import load_inception_state_dict

INPUT_SIZE = 299
POOL_DIM = 2048
LOGITS_DIM = 1008
# sFID (ADM): the first 7 channels of TF's ``mixed_6/conv`` (Mixed_6d.branch1x1, after its ReLU),
# a 17 x 17 map at 299 px input, flattened in TF's (h, w, c) order.
SPATIAL_CHANNELS = 7
SPATIAL_DIM = SPATIAL_CHANNELS * 17 * 17


def resize_bilinear_tf1(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize exactly as TF1's ``ResizeBilinear`` with ``align_corners=False``.

    images: (N, C, H, W) floating point; size: (out_h, out_w). Returns (N, C, out_h, out_w) in
    the input's dtype. Output pixel ``i`` reads the source coordinate ``i * in / out`` (no
    half-pixel offset, unlike ``F.interpolate(align_corners=False)``), interpolating between
    ``floor`` and ``min(floor + 1, in - 1)``; so the last output rows/columns of an upscale
    repeat the edge. Coordinates are computed in float32 as TF does, and the interpolation is
    evaluated in TF's order (``top + (bottom - top) * dy``) so results agree to the last bits.
    """
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            f"expected a floating (N, C, H, W) tensor, got {images.dtype} {images.shape}"
        )
    in_h, in_w = images.shape[-2:]
    out_h, out_w = size

    def source_coordinates(in_size: int, out_size: int):
        scale = torch.tensor(in_size / out_size, dtype=torch.float32)
        coord = torch.arange(out_size, dtype=torch.float32) * scale
        lo = coord.floor().long()
        hi = (lo + 1).clamp(max=in_size - 1)
        frac = (coord - lo.float()).to(images.dtype)
        return lo.to(images.device), hi.to(images.device), frac.to(images.device)

    x_lo, x_hi, dx = source_coordinates(in_w, out_w)
    y_lo, y_hi, dy = source_coordinates(in_h, out_h)
    # Interpolating along x first for every source row gives the same numbers as TF's per-pixel
    # "top" and "bottom" rows, computed once instead of per output row.
    left, right = images[..., x_lo], images[..., x_hi]
    rows = left + (right - left) * dx
    top, bottom = rows[..., y_lo, :], rows[..., y_hi, :]
    return top + (bottom - top) * dy[:, None]


def preprocess_uint8(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 RGB (N, 3, H, W) in [0, 255] -> (N, 3, 299, 299) in [-1, 1], as the FID graph does."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(
            f"expected uint8 images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    x = resize_bilinear_tf1(images.to(dtype), (INPUT_SIZE, INPUT_SIZE))
    # The graph computes (x - 128) * 0.0078125; dividing by 128 gives bit-identical values.
    return (x - 128) / 128


class BasicConv2d(nn.Module):
    """Convolution without bias, BatchNorm (eps 0.001, TF's value) and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def tf_avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """TF's 3x3 SAME average pool: padded positions are left out of the mean."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """Mixed_5b/5c/5d (TF ``mixed``, ``mixed_1``, ``mixed_2``): 35 x 35 blocks."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(tf_avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Mixed_6a (TF ``mixed_3``): grid reduction 35 -> 17."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """Mixed_6b..6e (TF ``mixed_4`` .. ``mixed_7``): 17 x 17 blocks with factorised 7x7."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four branch outputs before concatenation (the first one is TF's ``mixed_k/conv``)."""
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3):
            b7d = layer(b7d)
        b7d = self.branch7x7dbl_5(self.branch7x7dbl_4(b7d))
        return [self.branch1x1(x), b7, b7d, self.branch_pool(tf_avg_pool_3x3(x))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.branches(x), 1)


class InceptionD(nn.Module):
    """Mixed_7a (TF ``mixed_8``): grid reduction 17 -> 8."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """Mixed_7b / Mixed_7c (TF ``mixed_9`` / ``mixed_10``): 8 x 8 blocks with split 3x3.

    ``pool`` is "avg" for Mixed_7b and "max" for Mixed_7c: the 2015 graph max-pools there.
    """

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], 1)
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = tf_avg_pool_3x3(x)
        return torch.cat([self.branch1x1(x), b3, b3d, self.branch_pool(pooled)], 1)


class InceptionV3Layers(nn.Module):
    """The FID Inception v3 graph on preprocessed input, with no weights loaded.

    ``forward`` takes (N, 3, 299, 299) floats in [-1, 1] (see ``preprocess_uint8``) and returns
    the feature dict documented on ``FIDInceptionV3.forward``. Its ``state_dict`` is the
    torch-fidelity layout (plus BatchNorm's ``num_batches_tracked`` counters).
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(POOL_DIM, LOGITS_DIM)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # 64 x 147 x 147
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # 64 x 73 x 73
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # 192 x 71 x 71
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # 192 x 35 x 35
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)  # 288 x 35 x 35, then 768 x 17 x 17
        x = self.Mixed_6c(self.Mixed_6b(x))
        branches = self.Mixed_6d.branches(x)
        # (N, 7, 17, 17) -> (N, 17, 17, 7) -> flat: the element order of ADM's NHWC features, so
        # statistics computed here are comparable with ADM's reference batches (mu_s, sigma_s).
        spatial = branches[0][:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).flatten(1)
        x = self.Mixed_6e(torch.cat(branches, 1))
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # 2048 x 8 x 8
        pool = x.mean(dim=(2, 3))  # TF's pool_3: 8x8 average
        logits_unbiased = pool @ self.fc.weight.T  # IS uses the logits without the bias
        return {"pool": pool, "spatial": spatial, "logits_unbiased": logits_unbiased}


class FIDInceptionV3(InceptionV3Layers):
    """Frozen FID Inception v3 with the standard 2015-12-05 weights, taking uint8 images.

    ``weights_path``: a weight file (torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``
    or pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``), an already loaded state dict in
    either layout, or None to look in the default places (``$LIT_RPE_WEIGHTS``,
    ``~/.cache/lit_rpe/``, torch hub's checkpoint folder). A missing file raises
    FileNotFoundError naming the file, where to put it and where to fetch it;
    ``download=True`` allows fetching it from the release URL instead (never the default).
    The module always stays in eval mode and holds no trainable parameters.
    """

    def __init__(
        self,
        weights_path: str | os.PathLike | Mapping[str, torch.Tensor] | None = None,
        *,
        download: bool = False,
    ) -> None:
        super().__init__()
        state_dict, self.has_logits = load_inception_state_dict(weights_path, download=download)
        result = self.load_state_dict(state_dict, strict=False)
        missing = [
            k
            for k in result.missing_keys
            if not k.endswith("num_batches_tracked")
            and (self.has_logits or not k.startswith("fc."))
        ]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"Inception weights do not fit the FID graph: missing {missing[:5]} "
                f"({len(missing)}), unexpected {result.unexpected_keys[:5]} "
                f"({len(result.unexpected_keys)})"
            )
        if not self.has_logits:
            # Randomly initialised, never used: make that visible to anyone reading the weights.
            self.fc.weight.data.fill_(float("nan"))
            self.fc.bias.data.fill_(float("nan"))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FIDInceptionV3:
        """Stay in eval mode: BatchNorm must use the stored statistics whatever the caller does."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of uint8 RGB images (N, 3, H, W) of any size (resized to 299 x 299).

        Returns float32 tensors: ``"pool"`` (N, 2048) pool_3 features (FID, KID, precision/
        recall), ``"spatial"`` (N, 2023) = 7 x 17 x 17 mixed_6/conv features in (h, w, c) order
        (sFID), and ``"logits_unbiased"`` (N, 1008) classifier logits without bias (IS). The
        last is absent when the weights had no classifier (pytorch-fid's wrapper layout).
        Computes in the dtype of the weights (call ``.double()`` for float64). On Ampere or
        newer GPUs cuDNN runs float32 convolutions in TF32 unless
        ``torch.backends.cudnn.allow_tf32`` is False, as it does for torch-fidelity and
        pytorch-fid; features then move at the 1e-3 level.
        """
        dtype = self.Conv2d_1a_3x3.conv.weight.dtype
        x = preprocess_uint8(images, dtype=dtype)
        features = {k: v.float() for k, v in super().forward(x).items()}
        if not self.has_logits:
            del features["logits_unbiased"]
        return features


FEATURE_DIMS = {"pool": POOL_DIM, "spatial": SPATIAL_DIM, "logits_unbiased": LOGITS_DIM}


class InceptionFeature(nn.Module):
    """One entry of ``FIDInceptionV3``'s output as an (N, d) tensor, for torchmetrics' ``feature=``.

    ``torchmetrics.image.fid.FrechetInceptionDistance(feature=InceptionFeature(net, "pool"))``
    then runs on uint8 images without torch-fidelity; ``num_features`` tells torchmetrics d.
    """

    def __init__(self, inception: FIDInceptionV3, key: str = "pool") -> None:
        super().__init__()
        if key not in FEATURE_DIMS:
            raise ValueError(f"unknown feature {key!r}; valid: {', '.join(FEATURE_DIMS)}")
        self.inception = inception
        self.key = key
        self.num_features = FEATURE_DIMS[key]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> float32 (N, num_features)."""
        return self.inception(images)[self.key]
