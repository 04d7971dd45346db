"""The training engine: the epoch loop of one run (`loop`) and the samplers of its streams."""

from nlbench.engine.loop import Engine, EngineOptions, FitResult, RunFailed, score_diagnostics

__all__ = ["Engine", "EngineOptions", "FitResult", "RunFailed", "score_diagnostics"]
