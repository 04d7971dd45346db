"""The method API: everything a method plugin imports, in one place.

    from nlbench.methods.api import Method, MethodHParams, EpochPlan, Stream, register

A plugin subclasses `Method` (or `SingleNetwork`, whose `loss` hook makes a loss-based method a few
lines), declares its hyperparameters in a nested `HParams`, and registers under a name.
"""

from nlbench.methods.api.context import MethodContext
from nlbench.methods.api.method import Diagnostics, Method, MethodCommand, MethodHParams
from nlbench.methods.api.plan import Batch, EpochPlan, Stream, StreamBatch
from nlbench.methods.api.registry import available, commands, get, register
from nlbench.methods.api.search import Choice, LogUniform, Uniform
from nlbench.methods.api.single_network import SingleNetwork, SingleNetworkHParams
from nlbench.methods.api.stages import Stage, StagedNetworks

__all__ = [
    "Batch",
    "Choice",
    "Diagnostics",
    "EpochPlan",
    "LogUniform",
    "Method",
    "MethodCommand",
    "MethodContext",
    "MethodHParams",
    "SingleNetwork",
    "SingleNetworkHParams",
    "Stage",
    "StagedNetworks",
    "Stream",
    "StreamBatch",
    "Uniform",
    "available",
    "commands",
    "get",
    "register",
]
