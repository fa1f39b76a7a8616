"""python -m interp_jax.bench attacks|train|analyze|all: see benchmarks.py."""

from absl import app

from interp_jax.bench.benchmarks import main

if __name__ == "__main__":
  app.run(main)
