"""Network dissection (Bau et al. 2017): what concept a unit's activation map outlines.

    r = range_update(range_init(C), act)                # pass 1: each unit's min and max
    h = histogram_update(histogram_init(C), act, r)     # pass 2: a histogram in that range
    t, err = thresholds(h, r, quantile=0.995)           # T_n, within err of the exact quantile
    tally = iou_update(iou_init(C, K), act, labels, t)  # pass 3, over the probe set
    tallies = iou_update_maps(tallies, acts, labels, ts) # pass 3, many maps ({key: ...})
    scores = iou(tally)                                 # [C, K] IoU(unit, concept)

All functions are pure and jit-friendly; every tally has a fixed size, so
memory does not grow with the probe set. The threshold T_n is the top 0.5%
quantile of unit n's activations over every spatial position of every probe
image. It is read off a histogram of `bins` equal bins between the unit's
minimum and maximum: the returned value lies in the bin that holds the order
statistics of the exact quantile, so it is within one bin width, plus the gap
between those two order statistics, of `np.quantile` (linear interpolation);
`thresholds` returns that bin width as the error bound.
"""

import jax
import jax.numpy as jnp
import numpy as np

# NetDissect's constants, the dissection section's defaults: a unit is a detector of its
# best concept above DETECTOR_IOU; T_n is its top 1 - QUANTILE of activations.
from interp_jax.default_config import DETECTOR_IOU, QUANTILE  # noqa: E402
_ONE_HOT_CONCEPTS = 64  # up to this many concepts, IoU counts are one matmul


def _flat(act: jax.Array, valid: jax.Array | None) -> tuple[jax.Array, jax.Array]:
  """[B, (H, W,) C] -> [B * H * W, C] and a [B * H * W] weight (0 for padded images)."""
  b, c = act.shape[0], act.shape[-1]
  per_image = act.reshape(b, -1, c)
  w = jnp.ones(per_image.shape[:2], jnp.float32)
  if valid is not None:
    w = w * valid[:, None].astype(jnp.float32)
  return per_image.reshape(-1, c), w.reshape(-1)


def range_init(units: int) -> dict:
  return {"min": jnp.full((units,), jnp.inf, jnp.float32),
          "max": jnp.full((units,), -jnp.inf, jnp.float32)}


def range_update(state: dict, act: jax.Array, valid: jax.Array | None = None) -> dict:
  """Each unit's running minimum and maximum over all positions of the valid images."""
  act = act.astype(jnp.float32)
  spatial = tuple(range(1, act.ndim - 1))
  # Each image's extremes first, then the valid ones': masking every position of a
  # flattened [B * H * W, C] map ran slower on XLA's CPU backend.
  lo, hi = act.min(spatial), act.max(spatial)                      # [B, C]
  if valid is not None:
    lo = jnp.where(valid[:, None], lo, jnp.inf)
    hi = jnp.where(valid[:, None], hi, -jnp.inf)
  return {"min": jnp.minimum(state["min"], lo.min(0)), "max": jnp.maximum(state["max"], hi.max(0))}


def _bins(x: jax.Array, rng: dict, bins: int) -> jax.Array:
  lo, hi = rng["min"], rng["max"]
  width = jnp.where(hi > lo, (hi - lo) / bins, 1.0)
  b = jnp.nan_to_num(jnp.floor((x - lo) / width), nan=0.0)  # in range, whatever x holds
  return jnp.clip(b, 0, bins - 1).astype(jnp.int32)


def histogram_init(units: int, bins: int = 2048) -> jax.Array:
  return jnp.zeros((units, bins), jnp.int32)


def histogram_update(hist: jax.Array, act: jax.Array, rng: dict,
                     valid: jax.Array | None = None) -> jax.Array:
  """Adds every position's activation to its unit's histogram over [min, max].

  Counts are int32 (exact up to 2^31 positions per unit); one scatter-add of
  [positions, units] per batch. NaN activations are counted in the first bin.
  """
  units, bins = hist.shape
  x, w = _flat(act.astype(jnp.float32), valid)
  b = _bins(x, rng, bins)
  flat = (jnp.arange(units)[None, :] * bins + b).reshape(-1)
  weights = jnp.broadcast_to(w[:, None], b.shape).reshape(-1).astype(jnp.int32)
  # _bins clips every index into range, so the scatter may skip its bounds checks
  # (half the time on XLA's CPU backend).
  return hist.reshape(-1).at[flat].add(weights, mode="promise_in_bounds").reshape(units, bins)


def thresholds(hist: jax.Array, rng: dict, quantile: float = QUANTILE):
  """T_n from a histogram: (thresholds [C], error bound [C]).

  With N positions, the exact quantile sits at order position p = q (N - 1)
  (0-based, ascending). The bin holding position floor(p) is found from the
  cumulative counts, and the value is interpolated linearly within it, so it
  lies strictly below the bin's top: when more than 1 - q of the positions tie
  at the maximum (a saturated or binary map), they all fire, where the exact
  quantile (the maximum itself) with `act > T` would fire nowhere.
  """
  hist = jnp.asarray(hist, jnp.float32)  # cumulative position arithmetic in float
  bins = hist.shape[1]
  lo, hi = jnp.asarray(rng["min"]), jnp.asarray(rng["max"])
  width = jnp.where(hi > lo, (hi - lo) / bins, 0.0)
  total = hist.sum(1)
  p = jnp.floor(quantile * (total - 1))
  cum = jnp.cumsum(hist, axis=1)
  b = jnp.sum(cum <= p[:, None], axis=1).clip(0, bins - 1)  # first bin with cum > p
  before = jnp.take_along_axis(cum, b[:, None], 1)[:, 0] - jnp.take_along_axis(hist, b[:, None],
                                                                                1)[:, 0]
  inside = jnp.take_along_axis(hist, b[:, None], 1)[:, 0]
  frac = jnp.where(inside > 0, (p - before + 0.5) / jnp.maximum(inside, 1), 0.5)
  return lo + width * (b + frac), width


def _taps(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  """The two source rows and weights of each of `size` outputs of jax.image.resize's
  bilinear kernel along an axis of length n (upsampling reads at most two rows)."""
  with jax.ensure_compile_time_eval():
    matrix = np.asarray(jax.image.resize(jnp.eye(n, dtype=jnp.float32), (size, n), "bilinear"))
  matrix = np.pad(matrix, ((0, 0), (0, 1)))   # a zero column: one-pixel maps get 2 taps
  rows = np.argsort(-np.abs(matrix), axis=1, kind="stable")[:, :2]
  return np.minimum(rows, n - 1), np.take_along_axis(matrix, rows, 1)


def upsample(act: jax.Array, shape: tuple[int, int]) -> jax.Array:
  """Bilinear resize of [B, h, w, C] maps to [B, H, W, C] (NetDissect upsamples to the masks);
  a dense layer's [B, C] is one value over the whole image.

  The numbers of jax.image.resize(..., "bilinear") for an enlargement, computed as two
  weighted gathers per axis, which XLA's CPU backend runs faster than the resize.
  """
  if act.ndim == 2:
    return jnp.broadcast_to(act[:, None, None, :], (act.shape[0], *shape, act.shape[1]))
  if act.shape[1:3] == tuple(shape):
    return act
  if act.shape[1] > shape[0] or act.shape[2] > shape[1]:  # a reduction: antialiased resize
    return jax.image.resize(act, (act.shape[0], *shape, act.shape[-1]), "bilinear")
  for axis, size in ((1, shape[0]), (2, shape[1])):
    rows, weights = _taps(act.shape[axis], size)
    w = lambda j: jnp.asarray(weights[:, j]).reshape((-1,) + (1,) * (act.ndim - axis - 1))
    act = jnp.take(act, rows[:, 0], axis=axis) * w(0) + jnp.take(act, rows[:, 1], axis=axis) * w(1)
  return act


def iou_init(units: int, concepts: int, categories: int = 1) -> dict:
  return {"intersection": jnp.zeros((units, concepts), jnp.float32),
          "unit": jnp.zeros((units, categories), jnp.float32),
          "concept": jnp.zeros((concepts,), jnp.float32)}


def concept_masks(labels: jax.Array, concepts: int) -> jax.Array:
  """[B, L, H, W] concept ids (-1 none) -> [B, H, W, K]: how many label layers of a pixel
  name each concept (0 or 1 when a concept appears in one layer per pixel)."""
  # A compare and a sum over the layers: faster on CPU than summing one-hot layers.
  ids = jnp.arange(concepts, dtype=labels.dtype)
  return (labels[..., None] == ids).sum(1, dtype=jnp.float32)


_CHUNK_BYTES = 256 << 20   # off CPU: the thresholded maps of one IoU step stay under this


def auto_chunk(batch: int, positions: int, units: int) -> int | None:
  """Images per step of the IoU counts of maps with `units` channels in all: 4 on XLA's
  CPU backend, where counting a whole batch at once ran slower than a scan over
  cache-sized chunks; elsewhere the whole batch in one product (None) unless its
  [B, H, W, units] float maps exceed _CHUNK_BYTES (deep layers against Broden's
  112 x 112 masks), then the largest divisor of the batch that fits. (The bound
  is a memory bound, not a measured optimum: no accelerator was at hand.)"""
  if jax.default_backend() == "cpu":
    return 4
  fit = max(1, _CHUNK_BYTES // max(4 * positions * units, 1))
  if fit >= batch:
    return None
  return max(d for d in range(1, fit + 1) if batch % d == 0)


def _counts(acts: dict, labels, thresholds: dict, valid, concept_category, categories) -> dict:
  """Per map: (|M_n ∩ L_c| [C, K], |M_n| on images annotated in each category [C, G],
  |L_c| [K]) of one group of images. The masks are built once for all maps."""
  concepts = concept_category.shape[0]
  if valid is not None:  # a padded image has no labels, so nothing of it is counted
    labels = jnp.where(valid[:, None, None, None], labels, -1)
  category = jnp.where(labels >= 0, concept_category[jnp.maximum(labels, 0)], -1)
  annotated = (category.reshape(category.shape[0], -1, 1) == jnp.arange(categories)).any(1)
  # Each pixel's columns: its concepts, then whether its image is annotated in each
  # category, so a map's |M_n ∩ L_c| and |M_n| per category are one product.
  b, (h, w) = labels.shape[0], labels.shape[2:]
  annotated = jnp.broadcast_to(annotated.astype(jnp.float32)[:, None, :], (b, h * w, categories))
  annotated = annotated.reshape(-1, categories)                         # [P, G]
  if concepts <= _ONE_HOT_CONCEPTS:
    masks = concept_masks(labels, concepts).reshape(-1, concepts)       # [P, K]
    count = masks.sum(0)
    columns = jnp.concatenate([masks, annotated], axis=1)               # [P, K + G]
  else:
    # Per label layer: each pixel's concept (0 where none) and whether it has one.
    layers = [(jnp.maximum(i, 0), (i >= 0).astype(jnp.float32))
              for i in labels.transpose(1, 0, 2, 3).reshape(labels.shape[1], -1)]   # [P]
    count = sum(jax.ops.segment_sum(ok, ids, concepts) for ids, ok in layers)
  out = {}
  for key, act in acts.items():
    fired = (upsample(act.astype(jnp.float32), labels.shape[2:]) > thresholds[key])
    flat = fired.astype(jnp.float32).reshape(-1, fired.shape[-1])       # [P, C]
    if concepts <= _ONE_HOT_CONCEPTS:
      both = jax.lax.dot_general(flat, columns, (((0,), (0,)), ((), ())))
      inter, unit = both[:, :concepts], both[:, concepts:]
    else:
      inter = sum(jax.ops.segment_sum(flat * ok[:, None], ids, concepts)
                  for ids, ok in layers).T
      unit = flat.T @ annotated
    out[key] = (inter, unit, count)
  return out


def iou_update(tally: dict, act: jax.Array, labels: jax.Array, threshold: jax.Array,
               valid: jax.Array | None = None, concept_category=None,
               chunk: int | None | str = "auto") -> dict:
  """Adds a batch to the IoU counts.

  Args:
    act: [B, h, w, C] (or [B, C]) activations; upsampled to the label maps.
    labels: [B, L, H, W] int concept ids per pixel and label layer, -1 = none.
    threshold: [C] T_n; M_n(x) = upsampled act > T_n.
    concept_category: [K] int, each concept's category (tally of iou_init(..., G)
      categories); None: one category.
    chunk: images counted per step of a lax.scan ("auto": auto_chunk(); None: all at once).

  As in NetDissect, a unit's firing enters the union with concept c only on
  images annotated in c's category (a texture-only image says nothing about
  objects). A pixel counts once per label layer naming the concept (Broden
  lists a part in one layer per part file). With few concepts the counts are one
  [P, C]^T [P, K + G] product (the G columns: the pixel's image is annotated in
  category g); with many (Broden's ~1,200) a segment sum per layer.
  """
  return iou_update_maps({0: tally}, {0: act}, labels, {0: threshold}, valid,
                         concept_category, chunk)[0]


def iou_update_maps(tallies: dict, acts: dict, labels: jax.Array, thresholds: dict,
                    valid: jax.Array | None = None, concept_category=None,
                    chunk: int | None | str = "auto") -> dict:
  """iou_update for several maps of the same images (layers; real and adversarial
  images share the masks), keyed alike in tallies, acts and thresholds.

  The masks are built once per group of images and every map is upsampled,
  thresholded and counted inside the same scan step, while that group's data is
  in cache: faster on XLA's CPU backend than one iou_update per map (`bench dissect`
  times the passes against the forward passes they need).
  """
  first = next(iter(tallies.values()))
  concepts, categories = first["concept"].shape[0], first["unit"].shape[1]
  concept_category = (jnp.zeros((concepts,), jnp.int32) if concept_category is None
                      else jnp.asarray(concept_category, jnp.int32))
  b = labels.shape[0]
  if chunk == "auto":
    units = sum(a.shape[-1] for a in acts.values())
    chunk = auto_chunk(b, int(np.prod(labels.shape[2:])), units)
  count = lambda a, l, v: _counts(a, l, thresholds, v, concept_category, categories)
  if chunk and b > chunk and b % chunk == 0:
    split = lambda x: x.reshape(b // chunk, chunk, *x.shape[1:])

    def body(acc, xs):
      return jax.tree.map(jnp.add, acc, count(*xs)), None

    zero = {key: (jnp.zeros_like(t["intersection"]), jnp.zeros_like(t["unit"]),
                  jnp.zeros_like(t["concept"])) for key, t in tallies.items()}
    valid = jnp.ones((b,), bool) if valid is None else valid
    counts, _ = jax.lax.scan(body, zero, (jax.tree.map(split, acts), split(labels), split(valid)))
  else:
    counts = count(acts, labels, valid)
  return {key: {"intersection": t["intersection"] + counts[key][0],
                "unit": t["unit"] + counts[key][1], "concept": t["concept"] + counts[key][2]}
          for key, t in tallies.items()}


def iou(tally: dict, concept_category=None) -> np.ndarray:
  """IoU(unit, concept) = |M ∩ L| / |M ∪ L| summed over the probe set: [C, K] (0 where empty)."""
  inter = np.asarray(tally["intersection"], np.float64)
  concept_category = (np.zeros(inter.shape[1], np.int64) if concept_category is None
                      else np.asarray(concept_category))
  unit = np.asarray(tally["unit"], np.float64)[:, concept_category]          # [C, K]
  union = unit + np.asarray(tally["concept"], np.float64)[None] - inter
  return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def detectors(scores: np.ndarray, threshold: float = DETECTOR_IOU):
  """Each unit's best concept (-1 when every IoU is 0), its IoU and whether it is a
  detector (IoU > threshold); ties go to the lower concept id."""
  best = np.where(scores.max(1) > 0, np.argmax(scores, axis=1), -1)
  value = np.where(best >= 0, scores[np.arange(len(scores)), np.maximum(best, 0)], 0.0)
  return best, value, value > threshold
