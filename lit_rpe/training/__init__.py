"""Training: the Lightning module, its settings, the CLI and everything a run needs.

- ``module``: ``DiffusionModule``; ``config``: ``NetConfig``, ``OptimConfig``.
- ``cli``: ``lit-rpe`` / ``python -m lit_rpe`` (fit, sample); ``experiments``: experiment
  composition and overrides; ``slurm``: sbatch rendering (``python -m lit_rpe.training.slurm``).
- ``checkpoints``: readable-checkpoint resume; ``signals``: stops at step boundaries.
- ``data``: the shard loader; ``callbacks``: sample grids, resolution eval, divergence guard.

Nothing is imported here: each part is a module of its own, imported by name.
"""
