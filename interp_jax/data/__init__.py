"""Data: sources (built-in concept_shapes, TFDS catalog, image folders) and batching."""

from interp_jax.data.pipeline import TrainBatches, eval_batches, num_eval_batches, to_model_input
from interp_jax.data.sources import FirstN, Meta, Source, describe, open_split

__all__ = ["FirstN", "Meta", "Source", "TrainBatches", "describe", "eval_batches",
           "num_eval_batches", "open_split", "to_model_input"]
