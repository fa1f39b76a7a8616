"""The documented schema of DIR/analysis/results.json (JSON Schema, draft 2020-12).

In Python the file is an analysis.AnalysisResults (analysis/results.py), a
typed dataclass per object below, with the same fields.

    {"run": {...}, "settings": {...},
     "accuracy": {"clean", "adversarial", "shared"?},
     "attack": {"success_rate", "num_successful", "turned_wrong"},
     "layers": {LAYER: {
         "num_neurons",
         "sets": {SET: {"included": [bool per neuron], "num_included",
                        "excluded": {"fewer_than_k", "tied"},
                        "mean", "median", "histogram": {"edges", "counts"},
                        "per_neuron": [consis or null], "topk_indices": [[id] * k],
                        "chance": {"mean", "std"},
                        "purity": {"mean", "median", "per_neuron", "chance"}}},
         "comparisons": {"real_vs_adversarial" | "real_vs_successful" | "real_vs_shared":
                         {"num_neurons", "real", OTHER}},
         "topk_overlap": {"mean", "num_neurons", "per_neuron"},
         "feature_cosine": float}},
     "eps_curve": {"layer", "num_paired", "points": [{"factor", "eps", "mean", "paired_mean",
                                                      "purity", "num_included", "accuracy",
                                                      "turned_wrong"}]}}

SET is real, adversarial (the model's own white-box attack; with settings.adversarial
"autoattack", each image's AutoAttack worst case), mixed (their
union: ids >= num_images are adversarial image id - num_images),
adversarial_by_prediction (the adversarial top-k scored with the class the
model predicts for each image), successful (settings.successful: "changed",
the adversarial images that changed the model's prediction, or
"right_to_wrong", those of images classified right that the attack made
wrong; protocol 2 uses the latter) and, when a source model is given, shared
(adversarial images made against that model, the same for every model).

A neuron is included in a set when its top-k there is decided by its
activations: its k-th best activation beats its (k+1)-th. The others fire on
fewer than k images of the set (`fewer_than_k`) or tie at the k-th place
(`tied`); they have per_neuron null and are left out of means, medians,
histograms and chance comparisons. mean and median are over included
neurons, under the similarity of settings.similarity; purity holds the same
under the identity similarity (the share of a neuron's top images in one
class). chance is the expected score of k images drawn at random from the
set, with the labels the set is scored with; null for a set of fewer than k
images. comparisons and topk_overlap use the neurons included in both sets; an eps
curve point's paired_mean uses the num_paired neurons included at every eps.
attack.turned_wrong (and each eps curve point's): of the images classified
right, the share the attack made wrong (null when none is right); protocol 2
matches models on it. settings.images_digest: a digest of the analysed images'
content, the same for every model scored on the same test share.
"""

_NUMBER_LIST = {"type": "array", "items": {"type": "number"}}
_SCORE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_CHANCE = {"type": "object", "required": ["mean", "std"],
           "properties": {"mean": _SCORE, "std": {"type": ["number", "null"]}}}
_PURITY = {"type": "object", "required": ["mean", "median", "per_neuron", "chance"],
           "properties": {"mean": _SCORE, "median": _SCORE, "chance": _CHANCE,
                          "per_neuron": {"type": "array", "items": _SCORE}}}
_SET = {
    "type": "object",
    "required": ["included", "num_included", "excluded", "mean", "median", "histogram",
                 "per_neuron", "topk_indices", "chance", "purity"],
    "properties": {
        "included": {"type": "array", "items": {"type": "boolean"}},
        "num_included": {"type": "integer", "minimum": 0},
        "excluded": {"type": "object", "required": ["fewer_than_k", "tied"],
                     "properties": {"fewer_than_k": {"type": "integer", "minimum": 0},
                                    "tied": {"type": "integer", "minimum": 0}}},
        "mean": _SCORE,
        "median": _SCORE,
        "histogram": {"type": "object", "required": ["edges", "counts"],
                      "properties": {"edges": _NUMBER_LIST,
                                     "counts": {"type": "array",
                                                "items": {"type": "integer", "minimum": 0}}}},
        "per_neuron": {"type": "array", "items": _SCORE},
        "topk_indices": {"type": "array",
                         "items": {"type": "array", "items": {"type": "integer", "minimum": 0}}},
        "chance": _CHANCE,
        "purity": _PURITY,
    },
}
_LAYER = {
    "type": "object",
    "required": ["num_neurons", "sets", "comparisons", "topk_overlap", "feature_cosine"],
    "properties": {
        "num_neurons": {"type": "integer", "minimum": 1},
        "sets": {"type": "object",
                 "required": ["real", "adversarial", "mixed", "adversarial_by_prediction",
                              "successful"],
                 "additionalProperties": _SET},
        "comparisons": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["num_neurons"],
            "properties": {"num_neurons": {"type": "integer", "minimum": 0}},
            "additionalProperties": _SCORE}},
        "topk_overlap": {"type": "object", "required": ["mean", "num_neurons", "per_neuron"],
                         "properties": {"mean": _SCORE,
                                        "num_neurons": {"type": "integer", "minimum": 0},
                                        "per_neuron": {"type": "array", "items": _SCORE}}},
        "feature_cosine": {"type": "number", "minimum": -1, "maximum": 1},
    },
}
_CURVE = {
    "type": "object", "required": ["layer", "num_paired", "points"],
    "properties": {"layer": {"type": "string"},
                   "num_paired": {"type": "integer", "minimum": 0},
                   "points": {"type": "array", "items": {
                       "type": "object",
                       "required": ["factor", "eps", "mean", "paired_mean", "purity",
                                    "num_included", "accuracy"],
                       "properties": {"factor": {"type": "number", "minimum": 0},
                                      "eps": {"type": "number", "minimum": 0},
                                      "mean": _SCORE, "paired_mean": _SCORE, "purity": _SCORE,
                                      "num_included": {"type": "integer", "minimum": 0},
                                      "accuracy": {"type": "number", "minimum": 0,
                                                   "maximum": 1},
                                      "turned_wrong": _SCORE}}}},
}
_FRACTION = {"type": "number", "minimum": 0, "maximum": 1}
RESULTS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "interp_jax analysis results",
    "type": "object",
    "required": ["run", "settings", "accuracy", "attack", "layers"],
    "properties": {
        "run": {"type": "object",
                "required": ["workdir", "checkpoint_step", "model", "dataset", "class_names"]},
        "settings": {"type": "object",
                     "required": ["attack", "eps", "steps", "k", "layers", "similarity",
                                  "num_images", "activation", "shared_from"]},
        "accuracy": {"type": "object", "required": ["clean", "adversarial"],
                     "properties": {"clean": _FRACTION, "adversarial": _FRACTION,
                                    "shared": _FRACTION},
                     "additionalProperties": False},
        "attack": {"type": "object", "required": ["success_rate", "num_successful"],
                   "properties": {"success_rate": _FRACTION,
                                  "num_successful": {"type": "integer", "minimum": 0},
                                  "turned_wrong": _SCORE}},
        "layers": {"type": "object", "minProperties": 1, "additionalProperties": _LAYER},
        "eps_curve": _CURVE,
    },
}


def validate(results: dict) -> None:
  """Raises jsonschema.ValidationError when results do not follow the schema."""
  import jsonschema
  jsonschema.validate(results, RESULTS_SCHEMA)
