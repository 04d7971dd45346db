"""Method plugins (`nlbench.methods`): one file per method, registered by name.

`api/` is the contract every method implements and `toolkit/` the machinery they share; every other
module here is one method and is imported when the registry is first asked for methods.
"""
