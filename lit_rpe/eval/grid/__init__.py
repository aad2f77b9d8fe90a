"""The eval grid: models x inference rules x resolutions, resumable, with its reports.

- ``spec``: ``GridSpec`` and ``load_grid``, the grid YAML checked before anything runs.
- ``run``: ``run_grid`` and the command line (``python -m lit_rpe.eval.grid FILE --print``).
- ``report``: results.md and the CSV; ``report_plots``: one plot per metric; ``report_html``,
  ``report_page``: report.html with samples and metrics side by side; ``published``: the
  published figures printed beside ours.

Names are imported on first use, so ``import lit_rpe.eval.grid.spec`` stays light.
"""

from lit_rpe._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "GridSpec": "spec",
        "ModelEntry": "spec",
        "load_grid": "spec",
        "run_grid": "run",
        "write_report": "report",
    },
)
