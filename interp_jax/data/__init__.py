"""Data: sources (built-in concept_shapes, TFDS catalog, image folders, IDX files) and batching.

    sources.py         one random-access interface (`len`, `get`) over every data set
    concept_shapes.py  the built-in data: known classes, a class tree, concept masks
    builders.py        TFDS builders of ours, written as array_record
    idx.py             MNIST-like data from its original IDX files
    arrays.py          images and labels already in memory, as a source
    validation.py      a validation hold-out chosen by content, for sets without one
    pipeline.py        deterministic, resumable batches, split per process
    augment.py         training-time augmentation inside the jitted step
    probes.py, broden.py  probe sets with a concept per pixel, for dissection
"""

from interp_jax.data.arrays import ArraySource
from interp_jax.data.augment import make_augment
from interp_jax.data.pipeline import (TrainBatches, content_hashes, eval_batches,
                                      num_eval_batches, sample_by_content, to_model_input)
from interp_jax.data.sources import FirstN, Meta, Source, Subset, describe, open_split
from interp_jax.data.validation import content_digests, holdout, holdout_size

__all__ = ["ArraySource", "FirstN", "Meta", "Source", "Subset", "TrainBatches", "content_digests",
           "content_hashes", "describe", "eval_batches", "holdout", "holdout_size", "make_augment",
           "num_eval_batches", "open_split", "sample_by_content", "to_model_input"]
