"""Protocol 2's settings: per-seed test shares, the declared analysis, criteria checks and
the record summary.json keeps (no training)."""

import types

import numpy as np
import pytest

from interp_jax import analysis, data
from interp_jax.default_config import base_config
from interp_jax.errors import UserError
from interp_jax.reproduction import findings, protocol, robust
from interp_jax.reproduction.experiment import REPRODUCED, variant_config


def _images(n=500, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8), rng.integers(0, 10, n)


def _pixels(source):
  """The share's images as a set of byte strings: what, not where."""
  batch = source.get(np.arange(len(source)))
  return {(img.tobytes(), int(l)) for img, l in zip(batch["image"], batch["label"])}


def test_each_seed_has_its_own_share_the_same_for_every_model_and_any_storage_order(
    monkeypatch):
  images, labels = _images()
  order = np.random.default_rng(5).permutation(len(labels))
  stored = {"as is": data.ArraySource(images, labels),
            "shuffled": data.ArraySource(images[order], labels[order])}
  which = {"copy": "as is"}
  monkeypatch.setattr(data, "open_split", lambda dataset, split: stored[which["copy"]])
  cfg = analysis.default_config()
  cfg.test_share = 0.4   # round(0.4 x 500) = 200 images per seed

  def share(variant, seed):
    run = types.SimpleNamespace(config=variant_config(base_config(), variant, seed))
    return analysis.evaluation_source(run, cfg)

  for seed in (1, 2):
    shares = [share(v, seed) for v in REPRODUCED]
    assert all(len(s) == 200 for s in shares)
    assert all(np.array_equal(s.indices, shares[0].indices) for s in shares)  # paired
  one, two = share("standard", 1), share("standard", 2)
  assert not np.array_equal(one.indices, two.indices)
  overlap = len(np.intersect1d(one.indices, two.indices))
  assert 40 < overlap < 120   # two independent draws of 40% share about 16% (80 images)
  # Stored in another order, each seed's share holds the same images.
  which["copy"] = "shuffled"
  assert _pixels(share("adv", 1)) == _pixels(one)
  assert _pixels(share("adv", 2)) == _pixels(two)
  # A count instead of a fraction; the whole split without a share.
  cfg.test_share = 123
  assert len(share("adv", 1)) == 123
  cfg.test_share = 0.0
  assert len(share("adv", 1)) == 500


def test_share_sizes_and_bad_shares():
  assert analysis.share_size(10_000, 0.5) == 5000 and analysis.share_size(400, 200) == 200
  assert analysis.share_size(400, 0) == 400 and analysis.share_size(3, 0.01) == 1
  assert analysis.share_size(400, 2000) == 400   # a count above the split: all of it
  for bad in (-0.1, 1.5, 200.5):
    with pytest.raises(UserError, match="test_share must be"):
      analysis.share_size(400, bad)


def _meta(eps_shape=(28, 28, 1), test=10_000):
  return data.Meta(name="digits", class_names=tuple("0123456789"), image_shape=eps_shape,
                   splits={"train": 54_000, "validation": 6_000, "test": test},
                   class_tree=None)


def test_the_declared_sweep_and_share_pass_the_analysis_checks():
  """Protocol 2's grid at MNIST's eps 0.3 (3 x 0.3 stays in the cube), 2,000 test images."""
  config = base_config()
  config.adv.eps, config.consistency.layers = 0.3, ("fc1",)
  cfg = protocol.analysis_for(analysis.default_config(), _v2())
  assert cfg.eps_curve == (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 3.0)
  assert cfg.test_share == 2000 and cfg.successful == "right_to_wrong"
  plan = analysis.check_for(cfg, config, _meta(), ("conv1", "conv2", "fc1", "logits"))
  assert plan.num_images == 2000
  cfg.test_share, cfg.num_images = 0.5, 100
  with pytest.raises(UserError, match="test_share draws a share of the test split"):
    analysis.check_for(cfg, config, _meta(), ("conv1", "fc1", "logits"))
  cfg.num_images, cfg.successful = 0, "sometimes"
  with pytest.raises(UserError, match="successful must be one of"):
    analysis.check_for(cfg, config, _meta(), ("conv1", "fc1", "logits"))


def _v2(**fields):
  c = findings.default_criteria()
  c.protocol = 2
  for k, v in fields.items():
    c[k] = v
  return c


def test_protocol_2_fixes_its_analysis_settings_and_refuses_contradictions():
  v1 = findings.default_criteria()
  cfg = analysis.default_config()
  assert protocol.analysis_for(cfg, v1) is cfg   # protocol 1 changes nothing
  cfg.eps_curve = (0.0, 1.0)
  with pytest.raises(UserError, match="config.analysis.eps_curve=.* contradicts protocol 2"):
    protocol.analysis_for(cfg, _v2())
  cfg = analysis.default_config()
  cfg.eps_curve = (0.0, 0.5)
  assert protocol.analysis_for(cfg, _v2(match_factors=(0.0, 0.5))).eps_curve == (0.0, 0.5)
  cfg = analysis.default_config()
  cfg.num_images = 200
  with pytest.raises(UserError, match="leave config.analysis.num_images unset"):
    protocol.analysis_for(cfg, _v2())


@pytest.mark.parametrize("fields, message", [
    ({"protocol": 3}, "protocol must be 1 or 2"),
    ({"match_factors": (0.5, 1.0)}, "must rise from 0"),
    ({"match_factors": (0.0, 1.0, 0.5)}, "must rise from 0"),
    ({"match_rate": 1.0}, "match_rate must be in"),
    ({"match_measure": "median"}, "match_measure"),
    ({"test_share": 0.0}, "its own share of the test split"),
    ({"robust_attack": "fgsm"}, "robust_attack must be one of"),
    ({"robust_images": -1}, "whole numbers"),
    ({"robust_stages": ("apgd_xx",)}, "unknown AutoAttack stage"),
    ({"robust_version": "strong"}, "unknown AutoAttack version"),
    ({"robust_version": "rand"}, "models with a random forward pass"),
])
def test_bad_protocol_2_criteria_are_refused(fields, message):
  with pytest.raises(UserError, match=message):
    protocol.check_criteria(_v2(**fields))


def test_the_record_names_the_declaration_and_what_differs_from_it():
  record = protocol.record(_v2())
  assert record.version == 2 and record.as_declared and record.changed == {}
  assert record.declared_in == protocol.DECLARED_IN[2]
  head = protocol._git("rev-parse", "HEAD")
  assert record.head == head and (head is None or len(head) == 40)
  changed = protocol.record(_v2(min_seeds=2, robust_images=50))
  assert not changed.as_declared
  assert changed.changed == {"min_seeds": [5, 2], "robust_images": [200, 50]}
  assert protocol.record(findings.default_criteria()).declared_in == protocol.DECLARED_IN[1]


def test_the_declared_robust_evaluation_is_named():
  assert robust.describe(_v2()).text == (
      "AutoAttack (standard) on 200 images of each seed's test share")
  assert robust.describe(_v2(robust_attack="pgd20", robust_images=0)).text == (
      "PGD-20 on each seed's test share")
  quick = robust.describe(_v2(robust_stages=("apgd_ce",), robust_steps=2))
  assert quick.text.startswith("AutoAttack (standard, stages apgd_ce, 2 steps)")
