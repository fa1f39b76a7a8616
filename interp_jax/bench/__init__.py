"""Benchmarks: `python -m interp_jax.bench attacks|train|analyze|dissect|explain|all`.

Each figure is printed beside a reference measured in the same run (the
gradient floor, the plain step, the forward passes alone, and the PyTorch
peer in torch_peer.py when torch is installed).
"""
