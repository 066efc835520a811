"""A tiny conv + dense network trained with a sparse optimiser; records what the tests check."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxsparse.sparsity import GMP, SET, Grow, RigL, StaticSparse, apply_masks, sparsify

HORIZON = 12  # optimiser steps per run
FREQ = 3


class TinyNet(nn.Module):
    """A conv layer, a shared dense layer, an actor head and a two-layer critic."""

    channels: int = 4
    hidden: int = 12

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Conv(self.channels, (2, 2), name="conv")(x))
        h = h.reshape(h.shape[0], -1)
        h = nn.tanh(nn.Dense(self.hidden, name="dense")(h))
        actor = nn.Dense(3, name="actor_out")(h)
        critic = nn.Dense(1, name="critic_out")(nn.relu(nn.Dense(self.hidden, name="critic_in")(h)))
        return actor, critic


def make_method(name: str, sparsity):
    if name == "static":
        return StaticSparse(sparsity=sparsity)
    if name == "gmp":
        return GMP(sparsity=sparsity, start=2, end=10, freq=FREQ)
    if name == "set":
        return SET(sparsity=sparsity, freq=FREQ, drop_fraction=0.3)
    if name == "set_cosine":
        return SET(
            sparsity=sparsity, freq=FREQ, drop_fraction=0.5, drop_schedule="cosine", end=HORIZON
        )
    if name == "rigl":
        return RigL(sparsity=sparsity, freq=FREQ, drop_fraction=0.3)
    if name == "grow":
        return Grow(sparsity=sparsity, final_sparsity=0.0, start=1, end=10, freq=FREQ)
    raise ValueError(name)


def make_optimizer(name: str) -> optax.GradientTransformation:
    if name == "adam":
        return optax.adam(1e-2)
    if name == "adamw":
        return optax.adamw(1e-2, weight_decay=0.1)
    if name == "clip_adam":
        return optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-2))
    if name == "sgd_momentum":
        return optax.sgd(1e-2, momentum=0.9)
    raise ValueError(name)


def net_and_data(channels: int = 4, hidden: int = 12, size: int = 5):
    net = TinyNet(channels, hidden)
    x = jax.random.normal(jax.random.PRNGKey(42), (6, size, size, 3))
    params = net.init(jax.random.PRNGKey(0), x)["params"]
    return net, x, params


def train(
    net,
    x,
    params,
    key: jax.Array,
    sparsity: jax.Array,
    method: str,
    optimizer: str,
    steps: int = HORIZON,
):
    """Run ``steps`` sparse updates; returns per-step records (all traced, so jit/vmap apply)."""
    tx = sparsify(make_optimizer(optimizer), make_method(method, sparsity), key=key)
    state = tx.init(params)
    params = apply_masks(params, state.masks)
    target = jax.random.normal(jax.random.fold_in(key, 7), (x.shape[0], 3))

    def loss(p):
        actor, critic = net.apply({"params": p}, x)
        return jnp.mean((actor - target) ** 2) + jnp.mean((critic - 1.0) ** 2)

    def step(carry, _):
        p, s = carry
        grads = jax.grad(loss)(p)
        updates, new_s = tx.update(grads, s, p)
        new_p = optax.apply_updates(p, updates)
        record = {
            "params_before": p,
            "grads": grads,
            "masks_before": s.masks,
            "masks": new_s.masks,
            "params": new_p,
            "inner_state": new_s.inner_state,
        }
        return (new_p, new_s), record

    (_, final_state), records = jax.lax.scan(step, (params, state), None, length=steps)
    return state, final_state, records
