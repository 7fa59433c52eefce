"""Running the study: configs, the evaluation runner, run records, reports and plots.

Entry points: `python -m runs.evaluate` (run a grid, resume after a crash) and
`python -m runs.report DIR` (re-score and re-plot a run without any model).
"""

__all__ = [
    "agents",
    "checks",
    "config",
    "episodes",
    "evaluate",
    "plan",
    "plots",
    "report",
    "rollout",
    "runner",
    "store",
    "summary",
]
