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
they hold beyond it (the JSONL lines; TensorBoard's events through a session
START event, as tensorboardX's purge_step does), so a resumed run's record
equals an uninterrupted one's. Only
process 0 writes; paths go through etils.epath, so a gs:// workdir works.
"""

import json
import os
import time
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
  """TensorBoard event files in `logdir`, one scalar series per metric name.

  Written through tensorboardX's synchronous EventsWriter and flushed at every
  record, like a JSONL line: its SummaryWriter queues events for a background
  thread, so a killed run lost records from before its checkpoint.
  """

  def __init__(self, logdir: str, resume_step: int = 0):
    self._events = None
    if jax.process_index() != 0:
      return
    from tensorboardX import event_file_writer  # only where something is written
    from tensorboardX.proto import event_pb2
    self._pb = event_pb2
    event_file_writer.directory_check(logdir)  # creates a local one; gs:// and s3:// need none
    self._events = event_file_writer.EventsWriter(os.path.join(logdir, "events"))
    if resume_step:
      # TensorBoard hides every event at or after a session START's step:
      # those a killed run wrote past the checkpoint this run resumes from.
      self._write(event_pb2.Event(step=resume_step + 1, session_log=event_pb2.SessionLog(
          status=event_pb2.SessionLog.START)))

  def _write(self, event) -> None:
    event.wall_time = time.time()
    self._events.write_event(event)
    self._events.flush()

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if self._events is None:
      return
    from tensorboardX import summary
    values = [v for name, x in scalars.items() for v in summary.scalar(name, float(x)).value]
    self._write(self._pb.Event(step=int(step), summary=summary.Summary(value=values)))

  def flush(self) -> None:
    if self._events is not None:
      self._events.flush()

  def close(self) -> None:
    if self._events is not None:
      self._events.close()
      self._events = None


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
