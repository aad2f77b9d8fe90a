"""Model sizes: the DiT paper's S, B, L, XL (patch 2, 4, 8) plus tiny sizes for CPU runs."""

from __future__ import annotations

import re

# name -> (depth, hidden_size, num_heads). Ti, XS and N are not in the DiT paper: CPU-scale sizes.
# XS is the CPU study's model (DiT-XS/4 at 32 px: an 8 x 8 token grid, 1.3 M parameters), sized
# so that 36 training runs and their eval grids fit in 2 hours on 2 AVX2 cores in fp32.
DIT_SIZES: dict[str, tuple[int, int, int]] = {
    "XL": (28, 1152, 16),
    "L": (24, 1024, 16),
    "B": (12, 768, 12),
    "S": (12, 384, 6),
    "Ti": (6, 192, 3),
    "XS": (4, 128, 2),
    "N": (2, 64, 2),
}
PATCH_SIZES = (1, 2, 4, 8)
_NAME = re.compile(r"^DiT-(?P<size>[A-Za-z]+)/(?P<patch>\d+)$")


def parse_model_name(name: str) -> dict[str, int]:
    """``DiT-<size>/<patch>`` -> dict(depth, hidden_size, num_heads, patch_size)."""
    match = _NAME.match(name)
    if not match or match["size"] not in DIT_SIZES or int(match["patch"]) not in PATCH_SIZES:
        raise ValueError(
            f"unknown model {name!r}; valid: DiT-<size>/<patch> with size in "
            f"{', '.join(DIT_SIZES)} and patch in {', '.join(map(str, PATCH_SIZES))}"
        )
    depth, hidden, heads = DIT_SIZES[match["size"]]
    return dict(depth=depth, hidden_size=hidden, num_heads=heads, patch_size=int(match["patch"]))
