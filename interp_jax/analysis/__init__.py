"""The per-model analysis: extract -> score -> tiles, and its settings.

    from interp_jax import analysis
    results, grids = analysis.analyze(run, analysis.default_config())

settings.py checks what a user asks for before compute; extraction.py streams the
split once (attacks, activations, top-k per set); scoring.py turns the top-k
lists into consistency, chance levels and controls; tiles.py picks the images
the report shows.
"""

from interp_jax.analysis.model_analysis import (analysed_source, analyze, analyze_with_images,
                                                eps_curve, evaluation_source, share_of)
from interp_jax.attacks.batches import content_seeds, image_keys
from interp_jax.analysis.extraction import Extracted, extract
from interp_jax.analysis.own import analyze_model
from interp_jax.analysis.scoring import SETS, score, score_set
from interp_jax.analysis.settings import (Plan, check_for, decisive_layer, default_config,
                                          resolved_eps, share_size)
from interp_jax.analysis.tiles import GROUPS, NeuronGrid, neuron_grids

__all__ = ["Extracted", "GROUPS", "NeuronGrid", "Plan", "SETS", "analysed_source", "analyze",
           "analyze_model",
           "analyze_with_images",
           "check_for",
           "content_seeds", "decisive_layer", "default_config", "eps_curve",
           "evaluation_source", "extract", "image_keys", "neuron_grids", "resolved_eps", "score",
           "score_set", "share_of", "share_size"]
