"""Shared machinery of nlbench: suites, the training engine, networks, neighbours, store, reports."""
