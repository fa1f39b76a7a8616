"""The documented schema of DIR/analysis/results.json (JSON Schema, draft 2020-12).

    {"run": {...}, "settings": {...}, "accuracy": {"clean", "adversarial"},
     "layers": {LAYER: {"num_neurons", "num_alive", "alive": [bool per neuron],
                        "sets": {SET: {"mean", "median", "histogram": {"edges", "counts"},
                                       "per_neuron": [consis], "topk_indices": [[id] * k]}},
                        "chance": {"mean", "std"},
                        "topk_overlap": {"mean", "per_neuron"},
                        "feature_cosine": float}}}

SET is real, adversarial, mixed (ids >= num_images are adversarial image
id - num_images) or adversarial_by_prediction (the adversarial top-k scored
with the class the model predicts for each image). Means and medians are over
the neurons that fire on some real image (`alive`).
"""

_NUMBER_LIST = {"type": "array", "items": {"type": "number"}}
_SET = {
    "type": "object",
    "required": ["mean", "median", "histogram", "per_neuron", "topk_indices"],
    "properties": {
        "mean": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "median": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "histogram": {"type": "object", "required": ["edges", "counts"],
                      "properties": {"edges": _NUMBER_LIST,
                                     "counts": {"type": "array",
                                                "items": {"type": "integer", "minimum": 0}}}},
        "per_neuron": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
        "topk_indices": {"type": "array",
                         "items": {"type": "array", "items": {"type": "integer", "minimum": 0}}},
    },
}
_LAYER = {
    "type": "object",
    "required": ["num_neurons", "num_alive", "alive", "sets", "chance", "topk_overlap",
                 "feature_cosine"],
    "properties": {
        "num_neurons": {"type": "integer", "minimum": 1},
        "num_alive": {"type": "integer", "minimum": 0},
        "alive": {"type": "array", "items": {"type": "boolean"}},
        "sets": {"type": "object",
                 "required": ["real", "adversarial", "mixed", "adversarial_by_prediction"],
                 "additionalProperties": _SET},
        "chance": {"type": "object", "required": ["mean", "std"],
                   "properties": {"mean": {"type": "number"}, "std": {"type": "number"}}},
        "topk_overlap": {"type": "object", "required": ["mean", "per_neuron"],
                         "properties": {"mean": {"type": ["number", "null"]},
                                        "per_neuron": _NUMBER_LIST}},
        "feature_cosine": {"type": "number", "minimum": -1, "maximum": 1},
    },
}
RESULTS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "interp_jax analysis results",
    "type": "object",
    "required": ["run", "settings", "accuracy", "layers"],
    "properties": {
        "run": {"type": "object",
                "required": ["workdir", "checkpoint_step", "model", "dataset", "class_names"]},
        "settings": {"type": "object",
                     "required": ["attack", "eps", "steps", "k", "layers", "similarity",
                                  "num_images", "activation"]},
        "accuracy": {"type": "object", "required": ["clean", "adversarial"],
                     "properties": {"clean": {"type": "number", "minimum": 0, "maximum": 1},
                                    "adversarial": {"type": "number", "minimum": 0,
                                                    "maximum": 1}}},
        "layers": {"type": "object", "minProperties": 1, "additionalProperties": _LAYER},
    },
}


def validate(results: dict) -> None:
  """Raises jsonschema.ValidationError when results do not follow the schema."""
  import jsonschema
  jsonschema.validate(results, RESULTS_SCHEMA)
