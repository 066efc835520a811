"""Feature extractors of the MOORE code: the MiniGrid 3-conv CNN, the Meta-World MLP expert, and
their MoE / MOORE mixtures.

Every conv and the task-weight layer have a ``kernel`` leaf (convs: ``[2, 2, in, out]``, as
``nn.Conv``), so the sparse core (``default_filter``) prunes them. Hidden activations are sown
into ``"intermediates"`` for the plasticity metrics (a conv channel is one neuron).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

OBS_SHAPE = (7, 7, 3)  # MiniGrid partial view, symbolic (object, colour, state) encoding
FEATURE_DIM = 4 * 4 * 64  # 7 -> 6 -> 5 -> 4 after three VALID 2x2 convs, 64 channels
CHANNELS = (16, 32, 64)
# Number of experts per MiniGrid / Meta-World suite (MOORE README and paper).
EXPERTS = {"MT3": 2, "MT5": 3, "MT7": 4, "MT10": 4}
_GS_EPS = 1e-8  # added to squared norms in Gram-Schmidt (norms of expert outputs are >> 1e-4)


class PatchConv2x2(nn.Module):
    """A VALID 2x2 convolution as one matmul over the four shifted views (``nn.Conv``'s params
    and output, bit for bit on CPU).

    Why: XLA:CPU runs a convolution's gradient inside a ``while`` loop (every ``lax.scan`` over
    minibatches) some 20x slower than at top level; a matmul has no such cliff
    (benchmarks/RESULTS.md, "PPO update").
    """

    features: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        cin = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (2, 2, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        h, w = x.shape[1] - 1, x.shape[2] - 1
        patches = [x[:, i : i + h, j : j + w, :] for i in range(2) for j in range(2)]
        return jnp.concatenate(patches, axis=-1) @ kernel.reshape(4 * cin, self.features) + bias


def check_obs(obs: Array) -> None:
    """Raise ``ValueError`` naming ``obs`` unless its shape is ``[B, 7, 7, 3]``."""
    if obs.ndim != 4 or tuple(obs.shape[1:]) != OBS_SHAPE:
        raise ValueError(f"obs must have shape [B, 7, 7, 3], got {tuple(obs.shape)}")


class MiniGridEncoder(nn.Module):
    """MOORE's CNN: 3x Conv(2x2, VALID) with ReLU, ReLU, Tanh; ``[B, 7, 7, 3]`` -> ``[B, 1024]``.

    ``final_activation=False`` drops the last Tanh (MoE/MOORE experts); ``layer_norm`` adds a
    LayerNorm over channels after each conv, before its activation (a plasticity baseline).
    Sows each conv's post-activation output as ``conv_{i}`` (``[B, H, W, C]``). The flatten is
    NHWC (PyTorch flattens NCHW): a fixed permutation of the 1024 features, irrelevant at init.
    """

    final_activation: bool = True
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        check_obs(obs)
        h = obs.astype(jnp.float32)  # raw symbolic indices, no normalisation (as MOORE)
        acts = (nn.relu, nn.relu, nn.tanh if self.final_activation else None)
        for i, (ch, act) in enumerate(zip(CHANNELS, acts, strict=True)):
            h = PatchConv2x2(ch, name=f"Conv_{i}")(h)
            if self.layer_norm:
                h = nn.LayerNorm(name=f"LayerNorm_{i}")(h)
            if act is not None:
                h = act(h)
            self.sow("intermediates", f"conv_{i}", h)
        return h.reshape(h.shape[0], -1)


def xavier_uniform(gain: float = 1.0) -> nn.initializers.Initializer:
    """PyTorch's ``xavier_uniform_(w, gain)``: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    return nn.initializers.variance_scaling(gain * gain, "fan_avg", "uniform")


class MLPExpert(nn.Module):
    """MOORE's Meta-World expert (``networks_sac.py``, ``--activation Linear``): ``Dense_{i}`` per
    width in ``hidden``, ReLU after all but the last, which stays linear; xavier-uniform kernels
    (gain sqrt(2) before a ReLU, 1 for the linear output), zero biases. Sows ``hidden_{i}``."""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, x: Array) -> Array:
        n = len(self.hidden)
        for i, width in enumerate(self.hidden):
            last = i == n - 1
            init = xavier_uniform(1.0 if last else math.sqrt(2.0))
            x = nn.Dense(width, kernel_init=init, name=f"Dense_{i}")(x)
            if not last:
                x = nn.relu(x)
            self.sow("intermediates", f"hidden_{i}", x)
        return x


def gram_schmidt(x: Array, eps: float = _GS_EPS) -> Array:
    """Orthonormalise the K vectors of each sample, ``[B, K, D]`` -> ``[B, K, D]`` (MOORE's layer).

    Modified Gram-Schmidt in expert order (equal to MOORE's classical form in exact arithmetic):
    b_k = r_k / sqrt(|r_k|^2 + eps), r_k = x_k minus its projections on b_0..b_{k-1}. A degenerate
    expert (zero, or in the span of the previous ones) has r_k ~ 0 and yields b_k ~ 0 instead of
    NaN (MOORE has no eps), so it then adds nothing to the mixture; gradients stay finite.
    """
    basis: list[Array] = []
    for k in range(x.shape[-2]):  # K is static and small (2..6)
        v = x[..., k, :]
        for b in basis:
            v = v - jnp.sum(v * b, axis=-1, keepdims=True) * b
        basis.append(v * jax.lax.rsqrt(jnp.sum(v * v, axis=-1, keepdims=True) + eps))
    return jnp.stack(basis, axis=-2)


class MixtureEncoder(nn.Module):
    """MoE (``orthogonal=False``) or MOORE (``True``) encoder: features = tanh(sum_k w_k e_k).

    ``n_experts`` experts (``expert_{k}``) give e_k: MiniGrid CNNs without the final Tanh, or with
    ``expert_hidden`` Meta-World ``MLPExpert``s of those widths (input: any ``[B, D]`` vector).
    MOORE first orthonormalises them per sample (``gram_schmidt``); the task weights are
    ``w = Dense(n_experts, use_bias=False)(one_hot(task))`` (``task_weights``), a prunable kernel.
    """

    n_tasks: int
    n_experts: int
    orthogonal: bool = False
    layer_norm: bool = False
    expert_hidden: Sequence[int] | None = None

    @nn.compact
    def __call__(self, obs: Array, task_id: Array) -> Array:
        if self.expert_hidden is not None:
            if self.layer_norm:
                raise ValueError("layer_norm is for the MiniGrid CNN experts only")
            hidden = tuple(self.expert_hidden)
            experts = [MLPExpert(hidden, name=f"expert_{k}") for k in range(self.n_experts)]
        else:
            experts = [
                MiniGridEncoder(
                    final_activation=False, layer_norm=self.layer_norm, name=f"expert_{k}"
                )
                for k in range(self.n_experts)
            ]
        e = jnp.stack([expert(obs) for expert in experts], axis=1)  # [B, K, 1024]
        if self.orthogonal:
            e = gram_schmidt(e)
        onehot = jax.nn.one_hot(task_id, self.n_tasks, dtype=e.dtype)
        w = nn.Dense(self.n_experts, use_bias=False, name="task_weights")(onehot)  # [B, K]
        return jnp.tanh(jnp.einsum("bk,bkd->bd", w, e))
