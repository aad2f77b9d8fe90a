"""The progress lines of ``ResolutionEvalCallback`` on rank 0."""

from __future__ import annotations

import time


class EvalProgress:
    """Rank 0's progress lines: cells done / total and images per second, printed through
    rich's console (above a RichProgressBar when one is live)."""

    def __init__(self, total: int, step: int):
        from rich import get_console

        self.console = get_console()
        self.total, self.step, self.done = total, step, 0
        self.started = time.perf_counter()
        self.console.print(f"[bold cyan]eval[/] step {step}: scoring {total} cells")

    def cell_done(self, label: str, images: int, seconds: float, metrics: dict) -> None:
        self.done += 1
        scores = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        self.console.print(
            f"[bold cyan]eval[/] step {self.step}: cells {self.done}/{self.total} "
            f"[bold]{label}[/] {images} images in {seconds:.1f} s "
            f"({images / max(seconds, 1e-9):.1f} img/s): {scores}"
            + (
                f"  [dim](all cells {time.perf_counter() - self.started:.0f} s)[/]"
                if self.done == self.total
                else ""
            )
        )
