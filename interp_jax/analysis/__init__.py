"""The per-model analysis: extract -> score -> tiles, and its settings.

    from interp_jax import analysis
    results, grids = analysis.analyze(run, analysis.default_config())
    results.layers["fc1"].sets["adversarial"].mean    # an AnalysisResults

    settings.py        what a user asks for, checked before compute
    extraction.py      the split streamed once: attacks, activations, top-k per set
    scoring.py         the top-k lists turned into consistency, chance levels, controls
    results.py         the typed results of the analysis, the dissection and the tracing,
                       and their JSON (results.json)
    tiles.py           the images the report shows
    model_analysis.py  analyze(run, cfg): the stages above, and the eps curve
    in_memory.py       analyze_model(model, variables, images, labels): a network and
                       arrays of the user's, no run directory
    robustness.py      accuracy under attack over a split (the attack command)
    dissection.py      network dissection, real against adversarial images
    tracing.py         predictions traced to neurons, and detection by them
"""

from interp_jax.analysis.model_analysis import (analysed_source, analyze, analyze_with_images,
                                                eps_curve, evaluation_source, share_of)
from interp_jax.attacks.batches import content_seeds, image_keys
from interp_jax.analysis.extraction import Extracted, extract
from interp_jax.analysis.in_memory import analyze_model
from interp_jax.analysis.results import (AnalysisResults, DissectionResults, LayerResult,
                                         SetScore, TracingResults)
from interp_jax.analysis.scoring import SETS, score, score_set
from interp_jax.analysis.settings import (Plan, check_for, decisive_layer, default_config,
                                          resolved_eps, share_size)
from interp_jax.analysis.tiles import GROUPS, NeuronGrid, neuron_grids

__all__ = ["AnalysisResults", "DissectionResults", "Extracted", "GROUPS", "LayerResult",
           "NeuronGrid", "Plan", "SETS", "SetScore", "TracingResults", "analysed_source",
           "analyze",
           "analyze_model",
           "analyze_with_images",
           "check_for",
           "content_seeds", "decisive_layer", "default_config", "eps_curve",
           "evaluation_source", "extract", "image_keys", "neuron_grids", "resolved_eps", "score",
           "score_set", "share_of", "share_size"]
