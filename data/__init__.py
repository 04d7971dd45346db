"""Datasets and label-noise models shared by every method. Imports nothing of nlbench but its errors."""
