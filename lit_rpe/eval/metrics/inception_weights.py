"""Where the FID Inception weights live, and the state-dict layouts they come in.

Two release files hold the converted TF 2015-12-05 weights; both names end in the sha256 prefix
6726825d (torch.hub's convention), so they are the same tensors:
- torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``: keys named like its
  ``FeatureExtractorInceptionV3`` (``Conv2d_1a_3x3.conv.weight``, ``Mixed_7c.branch_pool.bn.*``,
  ``fc.weight``), without BatchNorm's ``num_batches_tracked``. This is our native layout.
- pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``: loaded by pytorch-fid into torchvision's
  ``Inception3(num_classes=1008, aux_logits=False)``, whose attribute names are the same, so it
  needs only the ``num_batches_tracked`` counters dropped.
pytorch-fid's feature wrapper ``InceptionV3`` re-groups the same layers as ``blocks.{i}.{j}``
and drops the classifier; a state dict saved from it is mapped back through
``PYTORCH_FID_BLOCK_PREFIXES`` (and then gives no IS logits).

Nothing here touches the network unless ``download=True`` is passed explicitly.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import torch

WEIGHTS_ENV_VAR = "LIT_RPE_WEIGHTS"
TORCH_FIDELITY_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
TORCH_FIDELITY_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + TORCH_FIDELITY_FILENAME
)
PYTORCH_FID_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + PYTORCH_FID_FILENAME
)
WEIGHT_HASH_PREFIX = "6726825d"  # torch.hub convention: the file name ends in its sha256 prefix

# pytorch-fid's InceptionV3 wrapper: block i is an nn.Sequential whose j-th entry is a layer of
# the FID graph (the max/avg pools in between hold no parameters and are skipped here).
_PYTORCH_FID_BLOCKS = (
    ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"),
    ("Conv2d_3b_1x1", "Conv2d_4a_3x3"),
    (
        "Mixed_5b",
        "Mixed_5c",
        "Mixed_5d",
        "Mixed_6a",
        "Mixed_6b",
        "Mixed_6c",
        "Mixed_6d",
        "Mixed_6e",
    ),
    ("Mixed_7a", "Mixed_7b", "Mixed_7c"),
)
PYTORCH_FID_BLOCK_PREFIXES: dict[str, str] = {
    f"blocks.{i}.{j}.": f"{name}."
    for i, names in enumerate(_PYTORCH_FID_BLOCKS)
    for j, name in enumerate(names)
}


def default_weights_dir() -> Path:
    """Where lit_rpe looks first and downloads to: ``$LIT_RPE_WEIGHTS`` or ``~/.cache/lit_rpe``."""
    env = os.environ.get(WEIGHTS_ENV_VAR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "lit_rpe"


def weight_search_paths() -> list[Path]:
    """Candidate files, in order: both file names in the default dir, then in torch hub's cache.

    torch hub's ``checkpoints`` folder is where torch-fidelity, torchmetrics and pytorch-fid
    leave these files after their own downloads, so an existing copy is reused.
    """
    dirs = [default_weights_dir(), Path(torch.hub.get_dir()) / "checkpoints"]
    return [d / name for d in dirs for name in (TORCH_FIDELITY_FILENAME, PYTORCH_FID_FILENAME)]


def missing_weights_message() -> str:
    """What to download and where to put it, for the error raised when no file is found."""
    target = default_weights_dir() / TORCH_FIDELITY_FILENAME
    searched = "\n".join(f"  {p}" for p in weight_search_paths())
    return (
        f"FID Inception weights not found. Put the file {TORCH_FIDELITY_FILENAME} at\n"
        f"  {target}\n"
        f"(the folder is ${WEIGHTS_ENV_VAR} if set, else ~/.cache/lit_rpe/), or pass its path.\n"
        f"Fetch it yourself from\n  {TORCH_FIDELITY_URL}\n"
        f"(pytorch-fid's {PYTORCH_FID_FILENAME} from {PYTORCH_FID_URL} works too).\n"
        f"Searched:\n{searched}"
    )


def weights_tag(path: Path) -> str:
    """A short tag of a weight file (name and size) for cache keys of its features."""
    return hashlib.sha1(f"{path.name}:{path.stat().st_size}".encode()).hexdigest()[:8]


def find_inception_weights() -> Path | None:
    """The first existing file of ``weight_search_paths()``, or None."""
    return next((p for p in weight_search_paths() if p.is_file()), None)


def download_inception_weights() -> Path:
    """Fetch torch-fidelity's file into ``default_weights_dir()``, checking its hash prefix.

    Raises FileNotFoundError with ``missing_weights_message()`` when the network is unreachable.
    """
    target = default_weights_dir() / TORCH_FIDELITY_FILENAME
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(TORCH_FIDELITY_URL, str(target), WEIGHT_HASH_PREFIX)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a bad hash a RuntimeError
        raise FileNotFoundError(f"download failed ({err}).\n{missing_weights_message()}") from err
    return target


def resolve_inception_weights(path: str | os.PathLike | None, download: bool = False) -> Path:
    """The weight file to load: ``path`` if given, else the default places, else a download.

    Raises FileNotFoundError (with ``missing_weights_message()``) when nothing is found and
    ``download`` is False.
    """
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no file at {path}.\n{missing_weights_message()}")
        return path
    found = find_inception_weights()
    if found is not None:
        return found
    if download:
        return download_inception_weights()
    raise FileNotFoundError(missing_weights_message())


def to_native_layout(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], bool]:
    """Rename a state dict of any supported layout to torch-fidelity's key names.

    Returns (state dict without ``num_batches_tracked``, has_logits): has_logits is False for
    pytorch-fid's wrapper layout, which carries no classifier. Raises ValueError on keys that
    belong to no layout (with a few examples) so a wrong file fails loudly.
    """
    wrapper = any(k.startswith("blocks.") for k in state_dict)
    native: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue  # a training counter; torch-fidelity's file does not have it
        if wrapper:
            prefix = next((p for p in PYTORCH_FID_BLOCK_PREFIXES if key.startswith(p)), None)
            if prefix is None:
                unknown.append(key)
                continue
            key = PYTORCH_FID_BLOCK_PREFIXES[prefix] + key[len(prefix) :]
        elif not (key.startswith(("Conv2d_", "Mixed_")) or key in ("fc.weight", "fc.bias")):
            unknown.append(key)
            continue
        native[key] = value
    if unknown:
        raise ValueError(
            f"not an FID Inception state dict: {len(unknown)} unexpected keys, e.g. {unknown[:5]}"
        )
    has_logits = "fc.weight" in native and "fc.bias" in native
    return native, has_logits


def load_inception_state_dict(
    source: str | os.PathLike | Mapping[str, torch.Tensor] | None, download: bool = False
) -> tuple[dict[str, torch.Tensor], bool]:
    """Load (from a file, the default places, or a given mapping) and convert to native layout.

    Returns (state dict, has_logits) as ``to_native_layout``. Files are read with
    ``weights_only=True``: both release files are plain dicts of tensors.
    """
    if isinstance(source, Mapping):
        return to_native_layout(source)
    path = resolve_inception_weights(source, download=download)
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path} holds a {type(loaded).__name__}, not a state dict")
    return to_native_layout(loaded)
