"""Method plugins: one file per method, registered by name (see methods/base.py)."""
