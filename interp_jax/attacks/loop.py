"""The loop of an iterative attack: one jitted step, driven where it runs fastest.

    step = functools.partial(_jitted_step, apply_fn, ...)   # statics bound, jitted once
    carry = loop.fori(step, num_steps, carry, done=lambda c: c.fooled.all())

`fori` computes `carry = step(i, carry)` for i = 0 .. num_steps - 1, the same
values whichever way it runs:

- On XLA's CPU backend, with concrete inputs, it is a Python loop over the
  jitted step. A convolution inside an XLA loop gets CPU's generic kernels:
  a gradient step of small_cnn runs much slower inside `lax.fori_loop` than
  called step by step (and 100 unrolled steps take long to compile). The
  step is compiled once; `i` is passed as an array so it does not recompile.
  `done`, checked every `check_every` steps, ends the loop early when every
  image has its answer (one device-to-host copy of a bool per check).
- Elsewhere, or when traced (an attack called inside a user's jit or vmap),
  it is one `lax.fori_loop` (or `lax.while_loop` with `done`).
"""

import jax
import jax.numpy as jnp


def _traced(tree) -> bool:
  return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def on_host(carry) -> bool:
  """Whether `fori` drives the loop from Python: on CPU, outside any trace."""
  return jax.default_backend() == "cpu" and not _traced(carry)


def fori(step, num_steps: int, carry, done=None, check_every: int = 10):
  """carry = step(i, carry) for i in range(num_steps); stops early once done(carry).

  Args:
    step: (i, carry) -> carry, a pure function (jitted, for the host loop).
    num_steps: how many steps at most (a Python int).
    carry: the loop state, a pytree of arrays.
    done: optional (carry) -> bool scalar: nothing left to do. Stopping early
      must not change the result, so `step` must leave a done carry unchanged
      in every field the caller reads.
    check_every: steps between two checks of `done` in the host loop.
  """
  num_steps = int(num_steps)
  if on_host(carry):
    for i in range(num_steps):
      if done is not None and i % check_every == 0 and bool(done(carry)):
        break
      carry = step(jnp.int32(i), carry)
    return carry
  if done is None:
    return jax.lax.fori_loop(0, num_steps, step, carry)

  def cond(state):
    i, c = state
    return (i < num_steps) & jnp.logical_not(done(c))

  return jax.lax.while_loop(cond, lambda s: (s[0] + 1, step(s[0], s[1])),
                            (jnp.int32(0), carry))[1]
