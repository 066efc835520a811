"""PPO building blocks (PureJaxRL style): GAE, clipped policy loss, value loss, categorical head.

All functions are pure and work under `jax.jit` and `jax.vmap` (e.g. over a leading seed axis).
Hyperparameters are validated when they are concrete and skipped when traced.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse.sparsity.checks import check_range

Array = jax.Array


def gae(
    rewards: Array,
    values: Array,
    dones: Array,
    truncations: Array,
    bootstrap_values: Array,
    last_value: Array,
    gamma: float = 0.99,
    lam: float = 0.95,
) -> tuple[Array, Array]:
    """Generalised advantage estimates and returns for a time-major `[T, N]` rollout.

    Environments auto-reset inside `step`, so `values[t + 1]` after a step that ended an episode
    belongs to the next episode. Conventions, per step t:

    - `dones[t]`: the episode ended at t (terminated or truncated); `truncations[t]`: it ended by
      the time limit only (a truncation counts as done even if `dones[t]` is not set).
    - terminal (done, not truncated): next value 0, no bootstrap.
    - truncation: next value `bootstrap_values[t]` = V(final observation of the truncated
      episode), computed by the caller from `info["terminal_observation"]`; ignored elsewhere.
    - otherwise: next value `values[t + 1]`, or `last_value` (`[N]`) for t = T - 1.
    - `delta_t = r_t + gamma * next_value_t - values_t` (next value zeroed on a terminal);
      `A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}`, so advantages never cross an
      episode boundary; `returns = advantages + values`.
    """
    check_range("gamma", gamma, 0.0, 1.0)
    check_range("lam", lam, 0.0, 1.0)
    for name, arr in (
        ("rewards", rewards),
        ("dones", dones),
        ("truncations", truncations),
        ("bootstrap_values", bootstrap_values),
    ):
        if jnp.shape(arr) != jnp.shape(values):
            raise ValueError(f"{name} must have shape {jnp.shape(values)}, got {jnp.shape(arr)}")
    if jnp.shape(last_value) != jnp.shape(values)[1:]:
        raise ValueError(
            f"last_value must have shape {jnp.shape(values)[1:]}, got {jnp.shape(last_value)}"
        )

    values = jnp.asarray(values)
    dtype = values.dtype
    truncated = jnp.asarray(truncations, bool)
    done = jnp.logical_or(jnp.asarray(dones, bool), truncated)
    terminal = jnp.logical_and(done, ~truncated)

    next_values = jnp.concatenate([values[1:], jnp.asarray(last_value, dtype)[None]], axis=0)
    next_values = jnp.where(truncated, jnp.asarray(bootstrap_values, dtype), next_values)
    next_values = jnp.where(terminal, 0.0, next_values)
    deltas = jnp.asarray(rewards, dtype) + gamma * next_values - values
    decay = gamma * lam * (1.0 - done.astype(dtype))

    def step(adv_next: Array, xs: tuple[Array, Array]) -> tuple[Array, Array]:
        delta, dec = xs
        adv = delta + dec * adv_next
        return adv, adv

    _, advantages = jax.lax.scan(step, jnp.zeros_like(values[0]), (deltas, decay), reverse=True)
    return advantages, advantages + values


def ppo_policy_loss(
    log_probs: Array,
    old_log_probs: Array,
    advantages: Array,
    entropy: Array,
    clip_eps: float = 0.2,
    ent_coef: float = 0.01,
    normalize_advantages: bool = True,
) -> tuple[Array, dict[str, Array]]:
    """Clipped surrogate `-mean(min(r A, clip(r, 1-eps, 1+eps) A)) - ent_coef * mean(entropy)`.

    Advantages are normalised over the minibatch (mean / (std + 1e-8)) when asked; metrics are
    `approx_kl` (mean((r - 1) - log r)), `clip_fraction` (|r - 1| > eps) and mean `entropy`.
    """
    check_range("clip_eps", clip_eps, 0.0, np.inf, low_open=True)
    check_range("ent_coef", ent_coef, 0.0, np.inf)
    if normalize_advantages:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    log_ratio = log_probs - old_log_probs
    ratio = jnp.exp(log_ratio)
    surrogate = jnp.minimum(
        ratio * advantages, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * advantages
    )
    mean_entropy = entropy.mean()
    loss = -surrogate.mean() - ent_coef * mean_entropy
    metrics = {
        "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
        "clip_fraction": (jnp.abs(ratio - 1.0) > clip_eps).mean(),
        "entropy": mean_entropy,
    }
    return loss, metrics


def value_loss(
    values: Array, returns: Array, old_values: Array | None = None, clip_eps: float = 0.2
) -> Array:
    """Plain MSE `mean((v - R)^2)` (the MOORE / sparsity-paper setting); with `old_values`, the
    PPO2 clipped loss `mean(max((v - R)^2, (old + clip(v - old, -eps, eps) - R)^2))`."""
    squared = jnp.square(values - returns)
    if old_values is None:
        return squared.mean()
    check_range("clip_eps", clip_eps, 0.0, np.inf, low_open=True)
    clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
    return jnp.maximum(squared, jnp.square(clipped - returns)).mean()


def categorical_log_prob_and_entropy(logits: Array, actions: Any) -> tuple[Array, Array]:
    """Log-probability of integer `actions` and entropy of the categorical over the last axis of
    `logits` (`[..., A]`), via a stable `log_softmax`."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    actions = jnp.asarray(actions, jnp.int32)
    log_prob = jnp.take_along_axis(log_p, actions[..., None], axis=-1)[..., 0]
    probs = jnp.exp(log_p)
    entropy = -jnp.sum(probs * jnp.where(probs > 0, log_p, 0.0), axis=-1)  # 0 log 0 = 0
    return log_prob, entropy
