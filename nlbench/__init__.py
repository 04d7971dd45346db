"""nlbench: a benchmark harness for learning with noisy labels.

Layers, each importing only those below it (ARCHITECTURE.md; tests/test_layers.py checks it):
entry (`cli`) -> orchestration (`config`, `runner`, `executors`, `slurm`, `store`, `records`,
`report`, ...) -> `engine` -> the method API and toolkit (`methods.api`, `methods.toolkit`) ->
`data`; `errors` sits below all of them. Method plugins (`methods.<name>`) use the API and toolkit
and are imported by name through the registry, never by the layers above.
"""

__version__ = "0.2.0"
