"""A small MLP actor-critic for vector observations (gymnax control tasks, PureJaxRL's shape)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class MLPActorCritic(nn.Module):
    """Separate actor and critic MLPs (``hidden`` x ``layers``, tanh), orthogonal init."""

    n_actions: int
    hidden: int = 64
    layers: int = 2

    @nn.compact
    def __call__(self, obs: Array) -> tuple[Array, Array]:
        x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)

        def trunk(name: str) -> Array:
            h = x
            for i in range(self.layers):
                dense = nn.Dense(self.hidden, kernel_init=nn.initializers.orthogonal(np.sqrt(2)),
                                 name=f"{name}_{i}")  # fmt: skip
                h = jnp.tanh(dense(h))
            return h

        logits = nn.Dense(self.n_actions, kernel_init=nn.initializers.orthogonal(0.01),
                          name="actor_out")(trunk("actor"))  # fmt: skip
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), name="critic_out")(
            trunk("critic")
        )
        return logits, value[:, 0]
