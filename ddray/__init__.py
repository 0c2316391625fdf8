"""ddray: Ray-distributed evaluation orchestrator for dataset distillation."""

__version__ = "0.1.0"
