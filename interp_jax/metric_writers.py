"""Where training metrics go: metrics.jsonl and TensorBoard event files, behind one interface.

    writer = metric_writers.for_run(workdir, resume_step=0)
    writer.write_scalars(step, {"train_loss": 0.31, "eval_accuracy": 0.84})
    writer.close()

Every writer has the interface of clu's `MetricWriter` (write_scalars, flush,
close), so one of clu's writers can join a `MultiWriter`. clu's own writers
are not used by default: `clu.metric_writers` imports TensorFlow when it is
imported (its SummaryWriter is tf.summary), and the default path here has no
TensorFlow. TensorBoard's event files are therefore written by tensorboardX,
into WORKDIR/tensorboard, so `tensorboard --logdir runs` shows every run.

A resumed run redoes the steps after its checkpoint; both writers drop what
they hold beyond it (the JSONL lines, TensorBoard's events through
purge_step), so a resumed run's record equals an uninterrupted one's. Only
process 0 writes; paths go through etils.epath, so a gs:// workdir works.
"""

import json
import os
from typing import Mapping, Sequence

from etils import epath
import jax


class JsonlWriter:
  """metrics.jsonl: one JSON object a line, `step` first, values as floats."""

  def __init__(self, path: str, resume_step: int = 0):
    self.path = epath.Path(path)
    if self.path.exists() and jax.process_index() == 0:
      lines = self.path.read_text().splitlines()
      kept = [l for l in lines if l.strip() and json.loads(l)["step"] <= resume_step]
      self.path.write_text("".join(l + "\n" for l in kept))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if jax.process_index() != 0:
      return
    record = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    with self.path.open("a") as f:
      f.write(json.dumps(record) + "\n")

  def records(self) -> list[dict]:
    if not self.path.exists():
      return []
    return [json.loads(l) for l in self.path.read_text().splitlines() if l.strip()]

  def flush(self) -> None:
    pass  # every line is written and closed at once

  def close(self) -> None:
    pass


class TensorBoardWriter:
  """TensorBoard event files in `logdir`, one scalar series per metric name."""

  def __init__(self, logdir: str, resume_step: int = 0):
    self._writer = None
    if jax.process_index() == 0:
      import tensorboardX  # only where something is written
      # purge_step hides the events a killed run wrote after its checkpoint.
      self._writer = tensorboardX.SummaryWriter(
          logdir, purge_step=resume_step + 1 if resume_step else None)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if self._writer is not None:
      for name, value in scalars.items():
        self._writer.add_scalar(name, float(value), global_step=int(step))
      # On disk at once, like a JSONL line: a run killed after its checkpoint
      # has lost none of the events before it (they are written every log step).
      self._writer.flush()

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()


class MultiWriter:
  """Writes to every writer in turn (clu's MultiWriter, without clu's TensorFlow import)."""

  def __init__(self, writers: Sequence):
    self.writers = tuple(writers)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    for w in self.writers:
      w.write_scalars(step, scalars)

  def flush(self) -> None:
    for w in self.writers:
      w.flush()

  def close(self) -> None:
    for w in self.writers:
      w.close()


def for_run(workdir: str, resume_step: int = 0) -> MultiWriter:
  """WORKDIR/metrics.jsonl and WORKDIR/tensorboard/, resumed at `resume_step`."""
  return MultiWriter([JsonlWriter(os.path.join(workdir, "metrics.jsonl"), resume_step),
                      TensorBoardWriter(os.path.join(workdir, "tensorboard"), resume_step)])
