"""Execution of a plan on Ray Tune (the store decides what runs)."""

from ddray.run.runner import RunSummary, run_plan

__all__ = ["RunSummary", "run_plan"]
