"""One config per experiment: every default in default_config.py, the sections a run's
training ignores, one attack builder, and the demo as a config."""

import os

import pytest

from interp_jax import attacks, cli, default_config
from interp_jax.default_config import base_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_section_default_is_declared_once():
  """The modules' and the commands' defaults are the config's sections, not copies."""
  from interp_jax import analysis
  from interp_jax.analysis import dissection, tracing
  from interp_jax.reproduction import findings
  c = base_config()
  for name, module_default in (("analysis", analysis.default_config),
                               ("dissection", dissection.default_config),
                               ("tracing", tracing.default_config),
                               ("criteria", findings.default_criteria)):
    assert module_default is getattr(default_config, f"{name}_config"), name
    assert c[name].to_dict() == module_default().to_dict(), name
  assert set(default_config.EVALUATION_SECTIONS) <= set(c.keys())
  # The attack's fields are declared once, the same in every section that attacks.
  for name in ("analysis", "dissection"):
    assert {f: c[name][f] for f in default_config.ATTACK_FIELDS} == {
        "attack": "pgd", "eps": -1.0, "step_size": 0.0, "steps": 10, "norm": "linf"}


def test_an_attack_section_is_read_by_one_builder():
  """eps < 0 is the run's training eps, a step size of 0 the attack's default, and
  random_start is read where the section has it (the training attack's)."""
  section = base_config().analysis
  spec = attacks.AttackSpec.from_section(section, training_eps=4 / 255)
  assert (spec.name, spec.eps, spec.steps, spec.step_size, spec.norm) == (
      "pgd", 4 / 255, 10, None, "linf")
  section.eps, section.step_size, section.steps = 0.1, 0.02, 3
  spec = attacks.AttackSpec.from_section(section, training_eps=4 / 255)
  assert (spec.eps, spec.step_size, spec.steps) == (0.1, 0.02, 3)
  adv = base_config().adv
  adv.random_start = False
  assert attacks.AttackSpec.from_section(adv).random_start is False
  adv.eps = -1.0   # no run to take it from: out of bounds, as any negative radius
  with pytest.raises(ValueError, match="eps must be in"):
    attacks.AttackSpec.from_section(adv)


def test_a_run_is_reused_under_other_evaluation_settings(trained_workdir, data_dir):
  """The sections change how a run is measured, not what it learnt: a reproduction
  reuses the run under any of them, and still refuses other training settings."""
  from conftest import TRAINED, tiny_config
  from interp_jax.errors import UserError
  from interp_jax.reproduction.reuse import check_reusable
  config = tiny_config(data_dir, **TRAINED)
  config.analysis.k, config.criteria.protocol, config.tracing.num_images = 7, 2, 3
  config.dissection.iou_threshold, config.reproduction.seeds = 0.2, 2
  check_reusable(config, trained_workdir)
  config.optimizer.learning_rate = 0.5
  with pytest.raises(UserError, match="optimizer.learning_rate"):
    check_reusable(config, trained_workdir)


def test_the_demo_and_the_protocol_are_configs_not_command_lines():
  """make demo and make reproduce name a config and a workdir, nothing else; the demo's
  config says one seed of the three variants without a selection, under protocol 1,
  and the protocol's is protocol 2 at five seeds with the selection."""
  demo = cli.load_config_file(os.path.join(REPO, "configs/concepts.py:demo"))
  assert (demo.reproduction.seeds, demo.reproduction.selection) == (1, False)
  assert tuple(demo.reproduction.variants) == ("standard", "adv", "adv_consistent")
  assert demo.criteria.protocol == 1 and tuple(demo.analysis.eps_curve) == ()
  assert demo.tracing.num_images == 500 and demo.consistency.weight == 2.0
  full = cli.load_config_file(os.path.join(REPO, "configs/concepts.py"))
  assert (full.reproduction.seeds, full.reproduction.selection, full.criteria.protocol) == (
      5, True, 2)
  mnist = cli.load_config_file(os.path.join(REPO, "configs/mnist.py"))
  assert (mnist.criteria.protocol, mnist.analysis.steps) == (2, 20)
  makefile = open(os.path.join(REPO, "Makefile")).read()
  recipes = {target: makefile.split(f"\n{target}:")[1].split("\n\n")[0]
             for target in ("demo", "reproduce", "reproduce-mnist")}
  assert "--config=configs/concepts.py:demo --workdir=runs/demo" in recipes["demo"]
  assert "--config=configs/concepts.py --workdir=runs/reproduce" in recipes["reproduce"]
  for target, recipe in recipes.items():
    flags = [w for w in recipe.split() if w.startswith("--")]
    assert all(f.startswith(("--config", "--workdir")) for f in flags), (target, flags)
