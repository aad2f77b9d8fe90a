"""Official DiT (facebookresearch/DiT) and SiT (willisma/SiT) checkpoints as this suite's ``DiT``.

The network only: ``lit_rpe.official.model`` adds the objectives and samplers (``load_official``).

Both repositories share one network (``models.py``: timm PatchEmbed/Attention/Mlp, adaLN-Zero
blocks, a fixed sin-cos ``pos_embed`` table added to the patch tokens) and save a plain state
dict (released files) or ``{"model", "ema", "opt", "args"}`` (their ``train.py``; the EMA is
used, as their ``find_model`` does). Our ``DiT`` uses the same parameter names, so loading
maps no keys: it drops ``pos_embed`` after checking that it is exactly our ``sincos`` table at
the checkpoint's grid (so every inference rule applies unchanged at any resolution) and infers
the size from the shapes. Time input: the DiT network sees the DDPM timestep 0..999 as is and
the SiT network SiT's t in [0, 1] (t = 1 data), so both are built with ``time_scale = 1``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from lit_rpe.models.dit import DiT
from lit_rpe.models.sizes import DIT_SIZES
from lit_rpe.posenc import grid_positions, rule_frequencies, sincos_embedding

OFFICIAL_KINDS = ("dit", "sit")
WHERE_TO_GET = {
    "dit": "DiT-XL-2-256x256.pt / DiT-XL-2-512x512.pt from "
    "https://dl.fbaipublicfiles.com/DiT/models/<name> (facebookresearch/DiT README)",
    "sit": "SiT-XL-2-256x256.pt from the pre-trained model link of the willisma/SiT README",
}
# hidden size -> heads of the official sizes (heads are not visible in the shapes)
HEADS_OF_HIDDEN = {hidden: heads for _, hidden, heads in DIT_SIZES.values()}


def check_kind(kind: str) -> str:
    if kind not in OFFICIAL_KINDS:
        raise ValueError(f"unknown official checkpoint kind {kind!r}; valid: dit, sit")
    return kind


def read_official_state(path: str | Path, kind: str) -> dict[str, torch.Tensor]:
    """The network state dict of an official file (plain, or a train.py dict: its ``ema``)."""
    check_kind(kind)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"official {kind} checkpoint not found: {path}. Download {WHERE_TO_GET[kind]} "
            "by hand (nothing is downloaded at run time) and pass its local path."
        )
    # The official train.py saves its argparse args beside the weights: let the safe loader
    # rebuild them.
    with torch.serialization.safe_globals([argparse.Namespace]):
        obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
    if "state_dict" in obj and "pytorch-lightning_version" in obj:
        raise ValueError(
            f"{path} is a Lightning checkpoint of this suite, not an official {kind} file: "
            "sample it without --official"
        )
    for key in ("ema", "model"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if obj and all(k.startswith("module.") for k in obj):  # saved from a DDP wrapper
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} is not a state dict of tensors (keys: {sorted(obj)[:8]})")
    return obj


def _shape(state: dict, key: str, path) -> tuple[int, ...]:
    if key not in state:
        raise ValueError(
            f"{path} does not fit the official DiT/SiT layout: no {key!r} "
            f"(found {len(state)} keys, e.g. {sorted(state)[:5]})"
        )
    return tuple(state[key].shape)


def official_config(state: dict, *, num_heads: int | None = None, path="checkpoint") -> dict:
    """``DiT`` keyword arguments of an official state dict, read from its shapes.

    pos_embed (1, N, D): the square training grid sqrt(N) and the hidden size D;
    x_embedder.proj.weight (D, C, p, p): channels and patch; blocks.<i>: the depth; mlp.fc1:
    the MLP ratio; final_layer.linear (p p C_out, D): learn_sigma (C_out = 2 C); the label
    table (classes + 1, D): the classes (its last row is the null class). Heads come from the
    official size of this hidden size unless ``num_heads`` is given.
    """
    _, tokens, hidden = _shape(state, "pos_embed", path)
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise ValueError(f"{path}: pos_embed has {tokens} tokens, not a square grid")
    out_hidden, channels, patch, _ = _shape(state, "x_embedder.proj.weight", path)
    depth = 0
    while f"blocks.{depth}.attn.qkv.weight" in state:
        depth += 1
    if depth == 0 or out_hidden != hidden:
        raise ValueError(f"{path} does not fit the official DiT/SiT layout (no blocks.0.attn)")
    mlp_hidden = _shape(state, "blocks.0.mlp.fc1.weight", path)[0]
    out_channels = _shape(state, "final_layer.linear.weight", path)[0] // (patch * patch)
    if out_channels not in (channels, 2 * channels):
        raise ValueError(f"{path}: final layer has {out_channels} channels for {channels} inputs")
    rows = _shape(state, "y_embedder.embedding_table.weight", path)[0]
    heads = num_heads or HEADS_OF_HIDDEN.get(hidden)
    if heads is None:
        raise ValueError(
            f"{path}: hidden size {hidden} is not an official size ({sorted(HEADS_OF_HIDDEN)}); "
            "pass num_heads"
        )
    return dict(
        input_size=grid * patch,
        patch_size=patch,
        in_channels=channels,
        hidden_size=hidden,
        depth=depth,
        num_heads=heads,
        mlp_ratio=mlp_hidden / hidden,
        num_classes=rows - 1,
        learn_sigma=out_channels == 2 * channels,
    )


def build_official_net(path: str | Path, kind: str, *, num_heads: int | None = None) -> DiT:
    """The official network of ``path`` as our ``DiT`` (sincos encoder, grid positions,
    time_scale 1, no label dropout), in eval mode. Raises ``ValueError`` when the keys or the
    ``pos_embed`` table do not fit."""
    state = dict(read_official_state(path, kind))
    config = official_config(state, num_heads=num_heads, path=path)
    net = DiT(
        **config,
        class_dropout_prob=0.0,
        encoder="sincos",
        train_positions="grid",
        time_scale=1.0,
    )
    table = state.pop("pos_embed")
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit the official {kind} layout: {err}") from err
    h, w = net.train_grid
    freqs = rule_frequencies(
        None, dim=net.axis_dim, theta=net.theta, train_grid=net.train_grid, test_grid=(h, w)
    )
    ours = sincos_embedding(grid_positions(1, h), grid_positions(1, w), freqs.h, freqs.w)
    if not torch.allclose(table.float(), ours, atol=1e-5, rtol=0):
        raise ValueError(
            f"{path}: pos_embed is not DiT's fixed sin-cos table at the {h}x{w} grid "
            f"(largest difference {(table.float() - ours).abs().max():.3g}); this is not an "
            "official DiT/SiT file, or its table was trained"
        )
    return net.eval()
