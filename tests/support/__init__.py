"""Helpers shared by test modules (a test module never imports another one; tests/test_layers.py
checks it). The fake providers live in connectors/fakes, where benchmarks and connector authors
import them too."""
