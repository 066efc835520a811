"""Shared test helpers: jitted functions compiled once per task and reused by every test.

A plain module, not conftest.py, so it cannot clash with another conftest named `conftest`."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from envs.minigrid import make


@functools.cache
def rollout_fn(task: str):
    """jit(scan) of step_env over an action sequence: per-step obs, reward, term, trunc, state."""
    env = make(task)

    def rollout(state, actions, params):
        def body(s, a):
            obs, s2, r, _, info = env.step_env(jax.random.key(0), s, a, params)
            out = (obs, r, info["terminated"], info["truncated"], s2.grid, s2.agent_pos,
                   s2.agent_dir, s2.carrying)  # fmt: skip
            return s2, out

        return jax.lax.scan(body, state, actions)[1]

    return jax.jit(rollout)


@functools.cache
def observe_fn(task: str):
    """jit of env.observe."""
    return jax.jit(make(task).observe)


@functools.cache
def batched_reset_fn(task: str):
    """jit(vmap(reset)) over a batch of keys."""
    return jax.jit(jax.vmap(make(task).reset))


def pad_actions(actions: list[int], length: int) -> jnp.ndarray:
    """Fixed-length action array (so one compiled rollout serves every sequence)."""
    assert len(actions) <= length, (len(actions), length)
    return jnp.asarray(actions + [6] * (length - len(actions)), jnp.int32)
