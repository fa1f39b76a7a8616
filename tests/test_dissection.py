"""Network dissection: the quantile, the streaming IoU against a naive full computation,
and a planted unit that outlines one concept exactly."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp_jax.analysis import dissection as analysis_dissection
from interp_jax.data import concept_shapes, probes
from interp_jax.data import open_split
from interp_jax.data.broden import ProbeConcepts
from interp_jax.measures import concept_iou as dis
from interp_jax.models.common import record


def _stream_thresholds(values, chunks, bins=512, quantile=0.995):
  """T_n from the histogram passes, fed in `chunks` pieces: values [N, H, W, C]."""
  units = values.shape[-1]
  rng = dis.range_init(units)
  for part in np.array_split(values, chunks):
    rng = dis.range_update(rng, jnp.asarray(part))
  hist = dis.histogram_init(units, bins)
  for part in np.array_split(values, chunks):
    hist = dis.histogram_update(hist, jnp.asarray(part), rng)
  return dis.thresholds(hist, rng, quantile), rng


@pytest.mark.parametrize("chunks", [1, 7])
def test_quantile_is_within_its_documented_error(chunks):
  rng = np.random.default_rng(0)
  # ReLU-like: most positions exactly zero, a long tail, one unit constant (dead).
  values = np.maximum(rng.standard_normal((300, 6, 6, 4)) * [1, 3, 0.2, 0], 0).astype(np.float32)
  values[..., 1] = np.where(rng.random(values.shape[:3]) < 0.02, 50.0, values[..., 1])
  (t, err), r = _stream_thresholds(values, chunks)
  flat = values.reshape(-1, 4)
  exact = np.quantile(flat, 0.995, axis=0)
  p = 0.995 * (len(flat) - 1)
  ordered = np.sort(flat, axis=0)
  gap = ordered[int(np.ceil(p))] - ordered[int(np.floor(p))]
  np.testing.assert_array_less(np.abs(np.asarray(t) - exact), np.asarray(err) + gap + 1e-6)
  # The bound is one bin of the unit's range, and the range is the exact min and max.
  np.testing.assert_allclose(np.asarray(err), (flat.max(0) - flat.min(0)) / 512, rtol=1e-6)
  assert np.asarray(t)[3] == 0.0 and np.asarray(err)[3] == 0.0   # a dead unit never fires
  # Splitting the stream differently changes no count: the histogram is exact.
  (t3, _), _ = _stream_thresholds(values, 3)
  np.testing.assert_array_equal(np.asarray(t), np.asarray(t3))


def test_padded_images_do_not_count():
  values = np.random.default_rng(1).random((10, 4, 4, 3)).astype(np.float32)
  valid = np.arange(10) < 6
  rng = dis.range_update(dis.range_init(3), jnp.asarray(values), jnp.asarray(valid))
  np.testing.assert_allclose(np.asarray(rng["max"]), values[:6].reshape(-1, 3).max(0))
  hist = dis.histogram_update(dis.histogram_init(3, 64), jnp.asarray(values), rng,
                              jnp.asarray(valid))
  assert float(hist.sum()) == 6 * 16 * 3


def test_upsample_equals_jax_image_resize():
  for x in (jax.random.uniform(jax.random.key(0), (2, 5, 7, 3)),
            jax.random.uniform(jax.random.key(1), (2, 1, 3, 3))):   # a one-pixel-high map
    for shape in ((20, 21), x.shape[1:3], (4, 6)):
      np.testing.assert_allclose(
          np.asarray(dis.upsample(x, shape)),
          np.asarray(jax.image.resize(x, (2, *shape, 3), "bilinear")), atol=1e-6)


def _naive_iou(act, labels, threshold, concepts):
  """IoU over the whole probe set at once, in numpy loops."""
  up = np.asarray(jax.image.resize(act, (act.shape[0], *labels.shape[2:], act.shape[-1]),
                                   "bilinear"))
  out = np.zeros((act.shape[-1], concepts))
  for u in range(act.shape[-1]):
    fired = up[..., u] > threshold[u]
    for c in range(concepts):
      mask = (labels == c).any(1)
      union = (fired | mask).sum()
      out[u, c] = (fired & mask).sum() / union if union else 0.0
  return out


@pytest.mark.parametrize("chunk", [None, 4])
def test_streaming_iou_equals_a_naive_full_computation(chunk, monkeypatch):
  rng = np.random.default_rng(2)
  act = jnp.asarray(rng.random((24, 4, 4, 5)), jnp.float32)
  # Two label layers with disjoint concepts (as Broden's categories), some pixels unlabelled.
  labels = np.stack([rng.integers(-1, 3, (24, 8, 8)),
                     np.where(rng.random((24, 8, 8)) < 0.2, -1, rng.integers(3, 6, (24, 8, 8)))],
                    1).astype(np.int32)
  threshold = jnp.asarray([0.3, 0.5, 0.7, 0.9, 2.0])
  tally = dis.iou_init(5, 6)
  for start in range(0, 24, 8):  # three batches, the last one half padding
    part = slice(start, start + 8)
    valid = np.arange(start, start + 8) < 20
    tally = dis.iou_update(tally, act[part], jnp.asarray(labels[part]), threshold,
                           jnp.asarray(valid), chunk=chunk)
  naive = _naive_iou(act[:20], labels[:20], np.asarray(threshold), 6)
  np.testing.assert_allclose(dis.iou(tally), naive, atol=1e-6)
  # The segment-sum path (many concepts) gives the same counts.
  monkeypatch.setattr(dis, "_ONE_HOT_CONCEPTS", 0)
  seg = dis.iou_update(dis.iou_init(5, 6), act[:8], jnp.asarray(labels[:8]), threshold,
                       chunk=chunk)
  monkeypatch.setattr(dis, "_ONE_HOT_CONCEPTS", 64)
  dense = dis.iou_update(dis.iou_init(5, 6), act[:8], jnp.asarray(labels[:8]), threshold,
                         chunk=chunk)
  for k in dense:
    np.testing.assert_allclose(np.asarray(seg[k]), np.asarray(dense[k]), atol=1e-5)


@pytest.mark.parametrize("one_hot", [64, 0])
def test_several_maps_in_one_pass_equal_each_counted_alone(one_hot, monkeypatch):
  """Maps of different sizes (a dense layer too) against shared masks, with padding and
  two categories: each map's counts equal iou_update of that map alone, and its IoU
  the naive one."""
  monkeypatch.setattr(dis, "_ONE_HOT_CONCEPTS", one_hot)  # the product and the segment sums
  rng = np.random.default_rng(3)
  acts = {"coarse": jnp.asarray(rng.random((8, 2, 2, 3)), jnp.float32),
          "fine": jnp.asarray(rng.random((8, 4, 4, 4)), jnp.float32),
          "dense": jnp.asarray(rng.random((8, 2)), jnp.float32)}
  labels = jnp.asarray(np.stack([rng.integers(-1, 2, (8, 8, 8)), rng.integers(1, 4, (8, 8, 8))],
                                1).astype(np.int32))
  thresholds = {k: jnp.asarray(rng.random(a.shape[-1]) * 0.8 + 0.1, jnp.float32)
                for k, a in acts.items()}
  category, valid = np.array([0, 0, 1, 1]), jnp.arange(8) < 6
  tallies = {k: dis.iou_init(a.shape[-1], 4, 2) for k, a in acts.items()}
  together = dis.iou_update_maps(tallies, acts, labels, thresholds, valid, category, chunk=2)
  for k, act in acts.items():
    alone = dis.iou_update(dis.iou_init(act.shape[-1], 4, 2), act, labels, thresholds[k],
                           valid, category, chunk=None)
    # Padded images count for nothing: the batch equals its valid images alone.
    valid_only = dis.iou_update(dis.iou_init(act.shape[-1], 4, 2), act[:6], labels[:6],
                                thresholds[k], concept_category=category, chunk=None)
    for field in alone:
      np.testing.assert_allclose(np.asarray(together[k][field]), np.asarray(alone[field]))
      np.testing.assert_allclose(np.asarray(together[k][field]), np.asarray(valid_only[field]))
  # Both label layers name concept 1: a pixel counts once per layer, as documented.
  one = dis.iou_update(dis.iou_init(4, 4), acts["fine"][:6], labels[:6], thresholds["fine"])
  naive = _naive_iou(acts["fine"][:6], np.asarray(labels[:6]), np.asarray(thresholds["fine"]), 4)
  np.testing.assert_allclose(dis.iou(one)[:, [0, 2, 3]], naive[:, [0, 2, 3]], atol=1e-6)


def test_detectors_pick_the_best_concept_above_the_threshold():
  scores = np.array([[0.01, 0.03, 0.02], [0.2, 0.5, 0.5], [0.0, 0.0, 0.041], [0.0, 0.0, 0.0]])
  best, value, is_det = dis.detectors(scores, 0.04)
  assert best.tolist() == [1, 1, 2, -1] and is_det.tolist() == [False, True, True, False]
  np.testing.assert_allclose(value, [0.03, 0.5, 0.041, 0.0])


def test_firing_counts_in_a_union_only_on_images_annotated_in_the_category():
  """NetDissect's rule on a partly labelled probe, by hand: 2 images of 2 x 2 pixels;
  concept 0 (category 0) on image 0 only, concept 1 (category 1) on image 1 only."""
  labels = np.array([[[[0, 0], [-1, -1]]], [[[1, -1], [-1, -1]]]], np.int32)  # [2, 1, 2, 2]
  act = jnp.ones((2, 2, 2, 1))                         # the unit fires on all 8 pixels
  tally = dis.iou_update(dis.iou_init(1, 2, 2), act, jnp.asarray(labels), jnp.zeros(1),
                         concept_category=np.array([0, 1]), chunk=None)
  # concept 0: 2 pixels inside, union = the 4 fired pixels of image 0 (image 1 has no
  # category-0 label); concept 1: 1 pixel inside, union = the 4 fired pixels of image 1.
  np.testing.assert_allclose(dis.iou(tally, np.array([0, 1])), [[2 / 4, 1 / 4]])
  # Without categories every fired pixel of an annotated image counts: 2/8 and 1/8.
  plain = dis.iou_update(dis.iou_init(1, 2), act, jnp.asarray(labels), jnp.zeros(1), chunk=None)
  np.testing.assert_allclose(dis.iou(plain), [[2 / 8, 1 / 8]])


class _MaskProbe:
  """Images whose red channel is concept 2's mask: a model can outline it exactly."""

  def __init__(self, n=40, size=8):
    rng = np.random.default_rng(3)
    self.labels = rng.integers(0, 4, (n, 1, size, size)).astype(np.int32)
    self.asked = []  # the `labels` argument of each get()
    red = (self.labels[:, 0] == 2).astype(np.uint8) * 255
    self.images = np.stack([red, rng.integers(0, 255, red.shape, dtype=np.uint8),
                            np.zeros_like(red)], -1)

  def __len__(self):
    return len(self.images)

  def get(self, idx, labels=True):
    self.asked.append(labels)
    idx = np.asarray(idx)
    return {"image": self.images[idx], "labels": self.labels[idx],
            "label": np.zeros(len(idx), np.int32), "index": idx}


class _Planted(nn.Module):
  """Unit 0 of "map" is the red channel (concept 2's mask); unit 1 the green noise."""

  @nn.compact
  def __call__(self, x, train=False):
    x = x + 0.0 * self.param("w", nn.initializers.zeros, ())
    record(self, "map", x[..., :2])
    return record(self, "logits", jnp.stack([x.mean((1, 2, 3)), -x.mean((1, 2, 3))], -1))

  @property
  def layer_names(self):
    return ("map", "logits")


def test_a_planted_unit_is_the_detector_of_its_concept():
  probe = probes.Probe(_MaskProbe(), ProbeConcepts(("a", "b", "c", "d"), ("x", "x", "y", "y")),
                       "planted")
  model = _Planted()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  given = probe.source.images.astype(np.float32) / 255  # "adversarial" = the same images
  results, ious, tiles = analysis_dissection.dissect(
      model, variables, probe, ("map",), adversarial=given, batch_size=16, bins=256,
      progress=False)
  iou = ious["map/real"]
  assert iou[0, 2] == pytest.approx(1.0) and iou[0].argmax() == 2
  real = results.layers["map"].sets["real"]
  assert real.concept[0] == "c" and real.detector[0]
  assert real.detectors_per_category["y"] >= 1
  # The same images as "adversarial": nothing changed.
  assert results.layers["map"].changed == ()
  np.testing.assert_allclose(ious["map/adversarial"], iou)
  assert tiles and tiles[0].unit == 0 and tiles[0].real_fired.shape == (6, 8, 8)
  np.testing.assert_array_equal(tiles[0].real_fired, tiles[0].concept_mask)
  # Passes 1 and 2 (3 batches each) ask for the images alone; pass 3 for the masks too.
  assert probe.source.asked[1:10] == [False] * 6 + [True] * 3


def test_concept_shapes_probe_reads_its_images_alone(data_dir):
  from conftest import tiny_config
  source = probes.open_probe(tiny_config(data_dir).dataset, "test").source
  full, bare = source.get(np.arange(3)), source.get(np.arange(3), labels=False)
  assert "labels" not in bare and "labels" in full
  np.testing.assert_array_equal(bare["image"], full["image"])


def test_concept_shapes_probe_labels_are_its_masks(data_dir):
  from conftest import tiny_config
  cfg = tiny_config(data_dir).dataset
  probe = probes.open_probe(cfg, "test")
  batch = probe.source.get(np.arange(5))
  seg = open_split(cfg, "test", with_segmentation=True).get(np.arange(5))["segmentation"]
  expected = concept_shapes.concept_masks(seg)                        # [5, K, H, W]
  got = np.asarray(dis.concept_masks(jnp.asarray(batch["labels"]), len(probe.concepts.names)))
  np.testing.assert_array_equal(got.transpose(0, 3, 1, 2), expected)
  assert probe.concepts.categories[0] == "shape" and probe.concepts.names[-1] == "texture/dots"


def test_a_broden_directory_is_a_probe_set(trained_workdir, tmp_path):
  """A run of concept_shapes dissected on a Broden-format directory: its concepts, attacked
  away from the model's own predictions (Broden images have no class)."""
  from test_broden import _broden
  from interp_jax.analysis import results as R
  from interp_jax.reproduction.stages import dissect_run
  from interp_jax.training.restore import load_trained
  import shutil
  work = tmp_path / "run"
  shutil.copytree(trained_workdir, work, ignore=shutil.ignore_patterns("dissection"))
  run = load_trained(str(work))
  cfg = analysis_dissection.default_config()
  cfg.broden, cfg.batch_size, cfg.steps, cfg.layers = str(_broden(tmp_path / "b")), 4, 2, ("conv1",)
  results, page = dissect_run(run, cfg, progress=False)
  assert results.concepts.names == ("red-c", "blue-c", "person", "striped", "car")
  layer = results.layers["conv1"]
  assert len(layer.sets["real"].concept) == layer.units == 16
  assert set(layer.sets["real"].detectors_per_category) == {"color", "object", "texture"}
  saved = R.DissectionResults.load(str(work / "dissection" / "results.json"))
  assert saved == results and saved.run.checkpoint_step == run.step
  iou = np.load(work / "dissection" / "iou.npz")["conv1/real"]
  assert iou.shape == (16, 5) and (iou >= 0).all() and (iou <= 1).all()
  assert (work / "dissection" / "index.html").exists() and page.endswith("index.html")


def test_dissection_attacks_the_images_the_analysis_attacked(trained_workdir):
  """Made here or taken from the analysis, the adversarial images are the same: the IoU
  tallies agree."""
  from interp_jax import analysis, attacks
  from interp_jax.training.restore import load_trained
  run = load_trained(trained_workdir)
  cfg = analysis.default_config()
  cfg.k, cfg.steps, cfg.eps_curve, cfg.batch_size, cfg.layers = 10, 2, (), 100, ("conv2",)
  _, _, adversarial = analysis.analyze_with_images(run, cfg, progress=False)
  probe = probes.open_probe(run.config.dataset, "test")
  spec = attacks.AttackSpec("pgd", float(run.config.adv.eps), steps=2)
  kw = dict(batch_size=100, bins=128, progress=False, units_shown=0, key=jax.random.key(cfg.seed))
  _, made, _ = analysis_dissection.dissect(run.model, run.variables, probe, ("conv2",),
                                           attack=spec, **kw)
  _, given, _ = analysis_dissection.dissect(run.model, run.variables, probe, ("conv2",),
                                            adversarial=adversarial, **kw)
  np.testing.assert_allclose(made["conv2/adversarial"], given["conv2/adversarial"], atol=1e-4)
  assert np.abs(made["conv2/adversarial"] - made["conv2/real"]).max() > 0  # attacked at all


def test_iou_steps_fit_in_memory_off_cpu(monkeypatch):
  assert dis.auto_chunk(256, 32 * 32, 64) == 4  # this machine: cache-sized chunks
  monkeypatch.setattr(dis.jax, "default_backend", lambda: "gpu")
  assert dis.auto_chunk(256, 32 * 32, 64) is None                  # 64 MiB: the whole batch
  assert dis.auto_chunk(256, 112 * 112, 2048) == 2                 # 100 MiB an image
  assert dis.auto_chunk(96, 112 * 112, 512) == 8                   # a divisor of the batch
