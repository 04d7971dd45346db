"""The suites nlbench ships (YAML), importable as package data so `nlbench run quick` works anywhere."""
