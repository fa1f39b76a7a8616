"""The paired differences over seeds that decide the findings, and the same at every layer.

    diffs = differences(per_seed, layer="fc1", confidence=0.95)
    diffs.decisive["adv_consistent_minus_adv"] -> an Interval (.mean, .low, .high, .per_seed)
    diffs.layers[LAYER][SET]["adv_consistent_minus_adv"] -> the same interval
    differences(per_seed, "fc1", robust={V: [accuracy per seed]}, matched={V: [value]})

`per_seed` maps a variant to its analyses (AnalysisResults), one a seed,
in seed order: run s of every variant shares seed s, so a difference is
taken within each seed and its mean gets a Student-t interval over the seeds
(reproduction/intervals.py).

Within one model, real and adversarial consistency are compared over the
neurons included in both sets (the analysis's paired `comparisons`);
between two models, each model's mean over its own included neurons
(neurons of two networks do not pair). A model's *exposure* on a set is the
share of its above-chance real-image consistency that the set removes:
(real - set) / (real - chance), both over the paired neurons. It is reported
beside the raw consistency because adversarially trained models sit at a
lower real-image consistency.
"""

from interp_jax.reproduction import intervals
from interp_jax.reproduction.summary import Differences

CONTROL_SETS = ("adversarial", "successful", "shared")


def _mean(results, layer: str, set_name: str):
  return results.layers[layer].sets[set_name].mean


def _chance(results, layer: str):
  return results.layers[layer].sets["real"].chance.mean


def _paired(results, layer: str, set_name: str):
  """(real, set) means over the neurons included in both; (None, None) if none are."""
  pair = results.layers[layer].comparisons.get(f"real_vs_{set_name}")
  if pair is None or pair.num_neurons == 0:
    return None, None
  return pair.real, pair.other


def exposure(results, layer: str, set_name: str):
  """(real - set) / (real - chance) over the paired neurons; None where undefined."""
  real, other = _paired(results, layer, set_name)
  chance = _chance(results, layer)
  if real is None or chance is None or real - chance <= 0:
    return None
  return (real - other) / (real - chance)


def _minus(a, b):
  return None if a is None or b is None else a - b


def _interval(values, confidence):
  """The t-interval of per-seed values; None if a seed lacks one."""
  if any(v is None for v in values):
    return None
  return intervals.t_interval(values, confidence)


def _diff(a, b, confidence):
  """The interval of a - b, seed by seed."""
  return _interval([_minus(x, y) for x, y in zip(a, b)], confidence)


def _per_layer_set(per_seed: dict, layer: str, set_name: str, confidence) -> dict:
  """Every difference on one set at one layer (an entry is None where a seed lacks it)."""
  if set_name not in per_seed["standard"][0].layers[layer].sets:
    return {}
  means = {v: [_mean(r, layer, set_name) for r in rs] for v, rs in per_seed.items()}
  exposed = {v: [exposure(r, layer, set_name) for r in rs] for v, rs in per_seed.items()}
  out = {"standard_real_minus_set": _interval(
      [_minus(*_paired(r, layer, set_name)) for r in per_seed["standard"]], confidence)}
  out.update({f"exposure_{v}": _interval(e, confidence) for v, e in exposed.items()})
  for a, b in PAIRS:
    if a in per_seed and b in per_seed:
      out[f"{a}_minus_{b}"] = _diff(means[a], means[b], confidence)
      # Positive: a is less exposed than b.
      out[f"exposure_{b}_minus_{a}"] = _diff(exposed[b], exposed[a], confidence)
  return out


# (a, b): the model differences reported, a - b.
PAIRS = (("adv_consistent", "adv"), ("adv_consistent", "standard"), ("adv", "standard"),
         ("adv_symmetric", "adv"), ("adv_symmetric", "standard"),
         ("adv_consistent", "adv_symmetric"))


def differences(per_seed: dict, layer: str, confidence: float = 0.95, robust=None,
                matched=None) -> Differences:
  """The intervals the findings read at `layer` ("decisive"), and every layer's.

  Also in "decisive": "successful_A_minus_B" (the successful set's model
  differences at `layer`) and, given `matched` ({variant: [value per seed]},
  reproduction/matched.py), "matched_A_minus_B". Given `robust` ({variant:
  [accuracy under the declared evaluation per seed]}), "robust_gain" is
  adv_consistent - standard under it, and "robust_gain_analysis" under the
  analysis attack (else "robust_gain" is the analysis attack's).
  """
  std = per_seed["standard"]
  layers = {l: {s: _per_layer_set(per_seed, l, s, confidence) for s in CONTROL_SETS}
            for l in std[0].layers}
  decisive = dict(layers[layer]["adversarial"])
  decisive["standard_real_minus_adversarial"] = decisive.pop("standard_real_minus_set")
  decisive["standard_real_minus_chance"] = _interval(
      [_minus(_mean(r, layer, "real"), _chance(r, layer)) for r in std], confidence)
  successful = layers[layer]["successful"]
  for a, b in PAIRS:
    if f"{a}_minus_{b}" in successful:
      decisive[f"successful_{a}_minus_{b}"] = successful[f"{a}_minus_{b}"]
    if matched and a in matched and b in matched:
      decisive[f"matched_{a}_minus_{b}"] = _diff(matched[a], matched[b], confidence)
  if "adv_consistent" in per_seed:
    acc = lambda v, key: [getattr(r.accuracy, key) for r in per_seed[v]]
    decisive["clean_drop"] = _diff(acc("standard", "clean"), acc("adv_consistent", "clean"),
                                   confidence)
    gain = _diff(acc("adv_consistent", "adversarial"), acc("standard", "adversarial"),
                 confidence)
    if robust is not None:
      decisive["robust_gain_analysis"] = gain
      gain = _diff(robust["adv_consistent"], robust["standard"], confidence)
    decisive["robust_gain"] = gain
  return Differences(layer, confidence, decisive, layers)
