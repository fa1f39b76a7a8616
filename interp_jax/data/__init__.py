"""Data: sources (built-in concept_shapes, TFDS catalog, image folders, IDX files) and batching."""

from interp_jax.data.arrays import ArraySource
from interp_jax.data.augment import make_augment
from interp_jax.data.pipeline import (TrainBatches, content_hashes, eval_batches,
                                      num_eval_batches, sample_by_content, to_model_input)
from interp_jax.data.sources import FirstN, Meta, Source, Subset, describe, open_split
from interp_jax.data.validation import content_digests, holdout, holdout_size

__all__ = ["ArraySource", "FirstN", "Meta", "Source", "Subset", "TrainBatches", "content_digests",
           "content_hashes", "describe", "eval_batches", "holdout", "holdout_size", "make_augment",
           "num_eval_batches", "open_split", "sample_by_content", "to_model_input"]
