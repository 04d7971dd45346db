"""The training engine: the epoch loop of one run (`loop`), its options, views, checkpoints and
diagnostics scoring, and the samplers of its streams."""

from nlbench.engine.diagnostics import score_diagnostics
from nlbench.engine.loop import Engine, FitResult, RunFailed
from nlbench.engine.options import EngineOptions

__all__ = ["Engine", "EngineOptions", "FitResult", "RunFailed", "score_diagnostics"]
