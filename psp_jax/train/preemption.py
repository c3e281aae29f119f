"""SIGTERM (preemption) as a flag the training loop checks between steps.

The loop saves a checkpoint at the current step, waits for it and raises `Preempted` (a
SystemExit with status 143 = 128 + SIGTERM); restarting the same command resumes. With several
processes the JAX preemption service (jax.distributed's own SIGTERM notifier) makes every
process agree on the step.
"""
from __future__ import annotations

import signal

import jax

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM: "terminated", the scheduler should restart the job


class Preempted(SystemExit):
  """SIGTERM received: a checkpoint at `step` was saved; exit status PREEMPTED_EXIT_CODE."""

  def __init__(self, step: int, message: str):
    super().__init__(PREEMPTED_EXIT_CODE)
    self.step = step
    self.message = message

  def __str__(self) -> str:
    return self.message


class PreemptionWatcher:
  """SIGTERM -> `reached(step)` is True (module docstring). `close()` restores the handler."""

  def __init__(self):
    self.requested = False
    self._previous = None
    self.multiprocess = jax.process_count() > 1
    if not self.multiprocess:
      try:
        self._previous = signal.signal(signal.SIGTERM, self._handler)
      except ValueError:  # not the main thread: no handler, preemption not watched
        self._previous = None

  def _handler(self, signum, frame):  # pylint: disable=unused-argument
    self.requested = True

  def reached(self, step: int) -> bool:
    if self.multiprocess:
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
      try:
        return bool(multihost_utils.reached_preemption_sync_point(step))
      except RuntimeError:
        return False
    return self.requested

  def close(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None
