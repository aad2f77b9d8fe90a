"""Official FiT / FiTv2 files (``.safetensors`` or ``.bin``, EMA weights) as the suite's ``FiT``.

The released files (docs/official_checkpoints.md) are plain state dicts with the parameter
names of whlzy/FiT's ``fit_model.py``. The architecture is read from the shapes; what shapes
cannot show comes from the published configs (``configs/fit/*.yaml``, ``configs/fitv2/*.yaml``):

- **FiTv1** (no ``global_adaLN_modulation``): DDPM with learned sigma (output ``2 C``), SwiGLU
  MLP of width ``4 D``, no q/k norm, plain adaLN.
- **FiTv2** (``global_adaLN_modulation`` present: adaLN-LoRA): linear-path velocity (output
  ``C``), SwiGLU of width ``8 D / 3``, q/k LayerNorm, LoRA rank from ``adaLN_modulation.1``.
- Heads: 16 for hidden size 1152 (XL), 24 for 2304 (3B). Patch 2.
- ``context_size`` (256, or 1024 for the HR fine-tunes) and ``ori_max_pe_len`` (16 for all)
  are not in the weights: loader options.

Every fault is one ``ValueError`` naming the file (and the key) before any sampling: a file
that neither safetensors nor torch can read (wrong or truncated), a missing or unexpected key,
a shape that does not fit, an objective that contradicts the file's version.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lit_rpe.models.fit import FiT

FIT_VERSIONS = ("fitv1", "fitv2")
# The objective of each version, as lit_rpe.official.model names it.
FIT_OBJECTIVE = {"fitv1": "dit", "fitv2": "sit"}
HEADS_OF_HIDDEN = {1152: 16, 2304: 24}
FIT_PATCH = 2
WHERE_TO_GET = (
    "the model_ema files of https://huggingface.co/InfImagine/FiT (FiTv1_xl/model_ema.bin) and "
    "https://huggingface.co/InfImagine/FiTv2 (FiTv2_XL, FiTv2_3B, FiTv2_XL_HRFT, FiTv2_3B_HRFT); "
    "see docs/official_checkpoints.md"
)


def read_fit_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a FiT file. ``.safetensors`` is read with safetensors, falling back to
    ``torch.load`` (the official loader does the same: some released ``.safetensors`` files are
    torch pickles); other suffixes with ``torch.load`` (weights only). A DDP ``module.`` prefix
    and a ``{"ema": ...}`` / ``{"model": ...}`` wrapper are removed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"FiT checkpoint not found: {path}. Download {WHERE_TO_GET} by hand (nothing is "
            "downloaded at run time) and pass its local path."
        )
    errors = []
    obj = None
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path))
        except Exception as err:  # noqa: BLE001 - any unreadable file gets the message below
            errors.append(f"safetensors: {err}")
    if obj is None:
        try:
            # a file object: torch.load would route a ``.safetensors`` name to safetensors again
            with path.open("rb") as f, torch.serialization.safe_globals([argparse.Namespace]):
                obj = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001
            errors.append(f"torch.load: {str(err).splitlines()[0]}")
            raise ValueError(
                f"{path} is not a readable FiT checkpoint (wrong or truncated file): "
                + "; ".join(errors)
            ) from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a FiT state dict")
    for key in ("ema", "model", "state_dict"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path}: key {bad[0]!r} is not a tensor; not a FiT state dict")
    return obj


def _shape(state: dict, key: str, path) -> tuple[int, ...]:
    if key not in state:
        raise ValueError(
            f"{path}: missing key {key!r}; not an official FiT/FiTv2 file "
            f"({len(state)} keys, e.g. {sorted(state)[:4]})"
        )
    return tuple(state[key].shape)


def fit_config(
    state: dict,
    *,
    path="checkpoint",
    num_heads: int | None = None,
    context_size: int = 256,
    ori_max_pe_len: int = 16,
) -> tuple[str, dict]:
    """(version, ``FiT`` keyword arguments) of an official state dict, from its shapes."""
    hidden, patch_dim = _shape(state, "x_embedder.proj.weight", path)
    if patch_dim % (FIT_PATCH * FIT_PATCH):
        raise ValueError(f"{path}: x_embedder.proj.weight has {patch_dim} inputs, not C * 2 * 2")
    channels = patch_dim // (FIT_PATCH * FIT_PATCH)
    version = "fitv2" if "global_adaLN_modulation.1.weight" in state else "fitv1"
    depth = 0
    while f"blocks.{depth}.attn.qkv.weight" in state:
        depth += 1
    if depth == 0:
        raise ValueError(f"{path}: missing key 'blocks.0.attn.qkv.weight'; not a FiT file")
    swiglu = "blocks.0.mlp.fc1_g.weight" in state
    fc1 = "blocks.0.mlp.fc1_g.weight" if swiglu else "blocks.0.mlp.fc1.weight"
    mlp_hidden = _shape(state, fc1, path)[0]
    out = _shape(state, "final_layer.linear.weight", path)[0] // (FIT_PATCH * FIT_PATCH)
    learn_sigma = out == 2 * channels
    if out not in (channels, 2 * channels):
        raise ValueError(
            f"{path}: key 'final_layer.linear.weight' gives {out} output channels for "
            f"{channels} input channels"
        )
    if learn_sigma != (version == "fitv1"):
        raise ValueError(
            f"{path}: key 'final_layer.linear.weight' has {out} output channels, but a "
            f"{version} file predicts {'eps and sigma (2 C)' if version == 'fitv1' else 'v (C)'}"
        )
    lora = None
    if version == "fitv2":
        lora = _shape(state, "blocks.0.adaLN_modulation.1.weight", path)[0]
    heads = num_heads or HEADS_OF_HIDDEN.get(hidden)
    if heads is None:
        raise ValueError(
            f"{path}: hidden size {hidden} (key 'x_embedder.proj.weight') is not a released "
            f"FiT size ({sorted(HEADS_OF_HIDDEN)}); pass num_heads"
        )
    rows = _shape(state, "y_embedder.embedding_table.weight", path)[0]
    return version, dict(
        hidden_size=hidden,
        depth=depth,
        num_heads=heads,
        mlp_hidden=mlp_hidden,
        patch_size=FIT_PATCH,
        in_channels=channels,
        num_classes=rows - 1,
        learn_sigma=learn_sigma,
        swiglu=swiglu,
        qk_norm=version == "fitv2",
        adaln_lora_dim=lora,
        context_size=context_size,
        pe_train_len=ori_max_pe_len,
    )


def rope_row_order(head_dim: int) -> torch.Tensor:
    """Channel order taking FiT's interleaved RoPE pairs to the suite's split pairs, per head.

    In each axis half of ``d = head_dim / 2`` channels, FiT pairs channels ``(2k, 2k + 1)``;
    ``apply_rope`` pairs ``(k, k + d/2)``. Returns ``order`` (head_dim,) with
    ``suite[j] = fit[order[j]]``: ``[0, 2, ..., d-2, 1, 3, ..., d-1]`` then the same + d.
    """
    d = head_dim // 2
    half = torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)])
    return torch.cat([half, half + d])


def to_suite_layout(state: dict, *, hidden: int, num_heads: int) -> dict:
    """A copy of ``state`` with each head's query and key rows of ``qkv`` in the suite's RoPE
    order (``rope_row_order``); values and every other key unchanged."""
    head_dim = hidden // num_heads
    order = rope_row_order(head_dim)
    rows = torch.cat([h * head_dim + order for h in range(num_heads)])
    index = torch.cat([rows, hidden + rows, torch.arange(2 * hidden, 3 * hidden)])
    out = dict(state)
    for key, value in state.items():
        if key.endswith("attn.qkv.weight") or key.endswith("attn.qkv.bias"):
            out[key] = value[index]
    return out


def build_fit_net(
    path: str | Path,
    *,
    num_heads: int | None = None,
    context_size: int = 256,
    ori_max_pe_len: int = 16,
    clamp_time: bool = True,
) -> tuple[FiT, str]:
    """The official FiT file at ``path`` as ``(FiT in eval mode, version)``; ``ValueError``
    naming the file and key when the file does not fit (see the module docstring)."""
    state = read_fit_state(path)
    version, config = fit_config(
        state,
        path=path,
        num_heads=num_heads,
        context_size=context_size,
        ori_max_pe_len=ori_max_pe_len,
    )
    net = FiT(**config, clamp_time=clamp_time)
    expected = net.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise ValueError(f"{path}: missing key {key!r} of a {version} file")
        if tuple(state[key].shape) != tuple(value.shape):
            raise ValueError(
                f"{path}: key {key!r} has shape {tuple(state[key].shape)}, a {version} file "
                f"with these sizes needs {tuple(value.shape)}"
            )
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise ValueError(f"{path}: unexpected key {unexpected[0]!r} for a {version} file")
    state = to_suite_layout(state, hidden=config["hidden_size"], num_heads=config["num_heads"])
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.eval(), version
