"""Rank, world size and the collectives the evaluation needs (sum, gather of rows).

Every helper works without ``torch.distributed`` being initialised: a single process is rank 0
of a world of 1, a sum over one rank is the tensor, a gather of one rank is its rows.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """Whether a process group is initialised (``torchrun``, Lightning DDP)."""
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size (0, 1 without torch.distributed)."""
    if is_distributed():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    """Wait for every rank (a no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def _collective_device() -> torch.device:
    # NCCL only reduces CUDA tensors; gloo (CPU DDP, tests) reduces CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place (a no-op without an initialised process group)."""
    if is_distributed():
        staged = tensor.to(_collective_device())
        dist.all_reduce(staged, op=dist.ReduceOp.SUM)
        tensor.copy_(staged)
    return tensor


def all_gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Concatenate (n_r, ...) tensors of every rank, in rank order; n_r may differ per rank.

    For metrics that need the samples themselves (KID, precision/recall). Without an
    initialised process group, returns ``rows`` unchanged.
    """
    if not is_distributed():
        return rows
    device = _collective_device()
    local = rows.to(device)
    count = torch.tensor([local.shape[0]], device=device)
    counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    longest = int(max(c.item() for c in counts))
    # all_gather needs equal shapes: pad to the longest, then cut each part back.
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    gathered = torch.cat([p[: int(c.item())] for p, c in zip(parts, counts, strict=True)])
    return gathered.to(rows.device)


def gather_in_index_order(indices: list[int], rows: torch.Tensor) -> torch.Tensor:
    """The (n_r, d) float ``rows`` of every rank, one per global index in ``indices``, gathered
    in one collective and sorted by index: (sum n_r, d), the same whatever the number of ranks.

    A rank without rows passes ``indices=[]`` and an empty (0, d) tensor. Indices are carried as
    a float32 column, exact below 2**24.
    """
    if rows.shape[0] != len(indices):
        raise ValueError(f"got {rows.shape[0]} rows for {len(indices)} indices")
    column = torch.tensor(indices, dtype=rows.dtype, device=rows.device).view(-1, 1)
    gathered = all_gather_rows(torch.cat([column, rows], 1))
    return gathered[gathered[:, 0].argsort(), 1:]
