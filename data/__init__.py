"""Datasets and label-noise models shared by every method. Imports nothing else of nlbench."""
