"""Two more SAC architectures for Meta-World: MOORE-SAC (``mooresac``) and Soft Modularization
(``softmod``). ``jaxsparse.nets.sac.SACNetworks(arch=...)`` builds them; each has an actor (mean
and log-std, the log-std clipped to ``[-20, 2]``, like ``SACActor``) and twin critics
``critic_0``/``critic_1`` on ``concat(state, action)``, so parameter paths are ``actor/...`` and
``critic/critic_{0,1}/...`` and a plan ``{"actor": ...}`` prunes the actor only. Every weight
matrix is a ``kernel`` leaf (the sparse core's ``default_filter`` prunes it).

Both take the task only through their task pathway (MOORE's task encoder, Soft Modularization's
task embedding), never through the state: the official codes feed the plain Meta-World
observation (39 numbers, no task id) to the experts / base network. ``SACNetworks`` drops the
one-hot task id that our Meta-World suite appends to the observation (``obs_task_dims``) before
calling these modules; ``mtmhsac`` keeps it.

MOORE-SAC (Hendawy et al., ICLR 2024), from the official code (github AhmedMagdyHendawy/MOORE:
``moore/utils/networks_sac.py`` ``MetaworldSACMixtureMH{Actor,Critic}Network`` and
``run/metaworld/run_metaworld_mt10_mhsac_mt_moore.sh``):

- ``n_experts`` (MT10: 4) experts, each an MLP on the state (critic: on ``concat(state,
  action)``) of ``--actor_n_features 400 400 400`` / ``--critic_n_features 400 400 400`` with ReLU
  between layers and ``--activation Linear`` on the last: ``MLPExpert``; xavier-uniform kernels
  (gain sqrt(2) before a ReLU, 1 on the linear layer) as the official code.
- per sample, the k expert outputs are orthonormalised by Gram-Schmidt (``--orthogonal``,
  ``OrthogonalLayer1D``), mixed with task weights ``w = Linear(one_hot(task), k, bias=False)``
  (the task encoder), then ``--agg_activation Linear Tanh``: features = tanh(sum_k w_k e_k);
  this is ``jaxsparse.nets.encoders.MixtureEncoder(orthogonal=True)`` (the MiniGrid MOORE's, with
  MLP experts), so the task-weight layer is ``encoder/task_weights`` (lecun-normal init, as our
  MiniGrid port; the official SAC code draws it xavier-uniform, gain 1).
- one output layer per task (``n_head_features`` empty: ``features -> out`` directly, xavier
  gain 1): ``TaskDense`` ``head``; the actor's outputs mean and log-std together
  (``--shared_mu_sigma``).
- the critic is a MOORE network too (same class, ``MetaworldSACMixtureMHCriticNetwork``), two
  independent copies (mushroom-rl SAC's ``n_models=2``).
- differences: the official run clips log-std to ``[-10, 2]``; here ``[-20, 2]`` as every SAC arch
  of this repository (SPEC). Biases start at zero (PyTorch: uniform in +-1/sqrt(fan_in)).

Soft Modularization (Yang et al., NeurIPS 2020), from the official code (github
RchalYang/Soft-Module: ``torchrl/networks/nets.py`` ``ModularGatedCascadeCondNet``,
``starter/mt_para_mtsac_modular_gated_cas.py`` and ``meta_config/mt10/modular_2_2_2_256_*.json``,
the README's "MT10 Shallow" setting, our default; its "Deep" one, ``modular_4_4_2_128``, is
``net.softmod.layers=4 modules=4 module_hidden=128``):

- base network: the state through ``hidden_shapes [400, 400]`` (ReLU between, the last layer
  linear), giving ``s``; the task embedding ``e = Linear(one_hot(task), 400)``
  (``em_hidden_shapes [400]``, linear); ``cond_ob``: ``e = e * s`` (element-wise), then
  ``s = relu(s)``.
- routing network: ``num_gating_layers 2`` layers of ``gating_hidden 256`` on ``relu(e)`` (ReLU
  between, the last linear) give the routing embedding ``g``; the first routing matrix is
  ``softmax(Linear(relu(g), n*n))`` reshaped to ``[n, n]`` (softmax over the source modules: row
  ``j`` weighs the previous layer's modules for module ``j``); each next one conditions on all
  previous (flattened, post-softmax: ``pre_softmax false``) ones: ``relu(Linear(prev) * g)`` ->
  ``Linear(n*n)`` -> softmax; the last gives ``n`` weights that pool the last layer's modules.
- modules: ``num_layers 2`` layers of ``num_modules 2`` modules, each ``Linear(module_hidden
  256)`` (a layer's modules stacked in one ``ModuleLayer``, kernel ``[n, in, 256]``, so GMP's
  per-layer sparsity is per module layer); layer 0 reads ``s``; module ``j`` of layer ``l+1``
  reads ``relu(sum_k W_l[j, k] out_k)``; the output is ``Linear(relu(sum_k w_k out_k), out)``,
  one layer shared by all tasks (the paper's MT10 networks have no per-task heads; the task
  enters through the routing).
- ``add_bn false``; initialisation as ``torchrl/networks/init.py``: ``basic_init`` (kernels
  U(+-1/sqrt(fan_in)), biases 0.1) everywhere but the routing logits and the output layer
  (``uniform_init``: kernels and biases U(+-3e-3)), so routing starts near uniform.
- the critic is the same network on ``concat(state, action)`` (``FlattenModularGatedCascadeCond
  Net``), two copies. The algorithm's ``temp_reweight`` (per-task loss weights from the
  temperatures) is an SAC change, not a network one, and is not implemented here.

Batches: ``task_major=True`` (T equal task-major blocks, as SAC's updates) runs MOORE's heads as
one matmul per task (``TaskDense``); Soft Modularization has no per-task layer but its one-hot
embedding and ignores the flag. Both are plain functions of their inputs, so ``jax.vmap`` over
seeds applies as to ``mtmhsac``.

Plasticity diagnostics: hidden activations are sown as ``"intermediates"`` (ReLU/tanh outputs,
plus MOORE's linear expert outputs, as the MiniGrid MOORE's last conv); the features that feed
the output layer are ``features`` (``SACNetworks.actor_features``). Soft Modularization sows its
routing weights in the ``"routing"`` collection (``weights_{l}`` ``[B, n, n]``, ``last_weights``
``[B, n]``), not counted as neurons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsparse.nets.encoders import MixtureEncoder
from jaxsparse.nets.multitask import TaskDense
from jaxsparse.sparsity.checks import check_int

Array = jax.Array

LOG_STD_MIN = -20.0  # the same bounds as jaxsparse.nets.sac (SPEC)
LOG_STD_MAX = 2.0
MOORE_EXPERTS = 4  # MOORE's README and run script: MT10 -> 4 experts (MT50 -> 6)


def _mean_log_std(out: Array, low: float, high: float) -> tuple[Array, Array]:
    mean, log_std = jnp.split(out, 2, axis=-1)
    return mean, jnp.clip(log_std, low, high)


# --------------------------------------------------------------------------------- MOORE
def _moore(
    module: nn.Module,
    x: Array,
    task_id: Array,
    task_major: bool,
    n_tasks: int,
    n_experts: int,
    hidden: Sequence[int],
    out: int,
) -> Array:
    """One MOORE network in ``module``'s scope (call from its compact method): ``encoder``
    (``MixtureEncoder`` with ``n_experts`` MLP experts of widths ``hidden``, Gram-Schmidt, task
    weights, tanh), sown as ``features``, then the per-task ``head`` (``TaskDense``,
    xavier-uniform kernels)."""
    encoder = MixtureEncoder(
        n_tasks, n_experts, orthogonal=True, expert_hidden=tuple(hidden), name="encoder"
    )
    features = encoder(x, task_id)
    module.sow("intermediates", "features", features)
    head_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform", batch_axis=(0,))
    head = TaskDense(n_tasks, out, kernel_init=head_init, name="head")
    return head(features, task_id, task_major)


class MooreSACNet(nn.Module):
    """One MOORE network ``[B, in] -> [B, out]`` (``_moore``); a critic of the twin critics."""

    n_tasks: int
    out: int
    n_experts: int = MOORE_EXPERTS
    hidden: Sequence[int] = (400, 400, 400)

    @nn.compact
    def __call__(self, x: Array, task_id: Array, task_major: bool = False) -> Array:
        return _moore(
            self, x, task_id, task_major, self.n_tasks, self.n_experts, self.hidden, self.out
        )


class MooreSACActor(nn.Module):
    """``(mean, log_std)``, each ``[B, action_dim]``, from one MOORE network."""

    n_tasks: int
    action_dim: int
    n_experts: int = MOORE_EXPERTS
    hidden: Sequence[int] = (400, 400, 400)
    log_std_min: float = LOG_STD_MIN
    log_std_max: float = LOG_STD_MAX

    @nn.compact
    def __call__(self, obs: Array, task_id: Array, task_major: bool = False) -> tuple[Array, Array]:
        out = _moore(
            self,
            obs,
            task_id,
            task_major,
            self.n_tasks,
            self.n_experts,
            self.hidden,
            2 * self.action_dim,
        )
        return _mean_log_std(out, self.log_std_min, self.log_std_max)


class MooreSACTwinCritic(nn.Module):
    """Two independent MOORE Q networks ``critic_0``, ``critic_1`` on ``concat(obs, action)``."""

    n_tasks: int
    n_experts: int = MOORE_EXPERTS
    hidden: Sequence[int] = (400, 400, 400)

    @nn.compact
    def __call__(
        self, obs: Array, action: Array, task_id: Array, task_major: bool = False
    ) -> Array:
        x = jnp.concatenate([obs, action], axis=-1)
        qs = [
            MooreSACNet(self.n_tasks, 1, self.n_experts, tuple(self.hidden), name=f"critic_{i}")(
                x, task_id, task_major
            )
            for i in range(2)
        ]
        return jnp.concatenate(qs, axis=-1)


# ---------------------------------------------------------------------- Soft Modularization
@dataclass(frozen=True)
class SoftModSpec:
    """Soft Modularization sizes (defaults: the official MT10 "Shallow" config
    ``modular_2_2_2_256``; its "Deep" one is ``layers=4, modules=4, module_hidden=128``). The
    base network's widths (``hidden_shapes``, default 400x2) are the actor's/critic's hidden
    widths; the task embedding has the base's last width."""

    layers: int = 2  # num_layers (L >= 2: the official code routes between consecutive layers)
    modules: int = 2  # num_modules per layer
    module_hidden: int = 256
    gating_hidden: int = 256
    gating_layers: int = 2  # num_gating_layers

    def __post_init__(self) -> None:
        check_int("softmod.layers", self.layers, minimum=2)
        check_int("softmod.modules", self.modules, minimum=1)
        check_int("softmod.module_hidden", self.module_hidden, minimum=1)
        check_int("softmod.gating_hidden", self.gating_hidden, minimum=1)
        check_int("softmod.gating_layers", self.gating_layers, minimum=0)


SOFTMOD_MT10 = SoftModSpec()  # the official MT10 "Shallow" sizes


def _fan_in_uniform() -> nn.initializers.Initializer:
    """torchrl ``_fanin_init``: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _symmetric_uniform(bound: float) -> nn.initializers.Initializer:
    def init(key: Array, shape: Sequence[int], dtype: jnp.dtype = jnp.float32) -> Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _basic_dense(features: int, name: str) -> nn.Dense:
    """torchrl ``basic_init``: fan-in uniform kernel, bias 0.1."""
    return nn.Dense(
        features,
        kernel_init=_fan_in_uniform(),
        bias_init=nn.initializers.constant(0.1),
        name=name,
    )


def _last_dense(features: int, name: str) -> nn.Dense:
    """torchrl ``uniform_init``: kernel and bias U(-3e-3, 3e-3)."""
    return nn.Dense(
        features,
        kernel_init=_symmetric_uniform(3e-3),
        bias_init=_symmetric_uniform(3e-3),
        name=name,
    )


class ModuleLayer(nn.Module):
    """One layer of ``n`` modules, module ``j`` a ``Linear(in, features)`` on its own input:
    ``[B, n, in] -> [B, n, features]``, ``kernel [n, in, features]`` (``basic_init`` per module:
    U(+-1/sqrt(in)), ``bias [n, features]`` 0.1)."""

    n: int
    features: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform", batch_axis=(0,))
        kernel = self.param("kernel", init, (self.n, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.constant(0.1), (self.n, self.features))
        return jnp.einsum("bni,nio->bno", x, kernel) + bias


def _softmod(
    module: nn.Module,
    x: Array,
    task_id: Array,
    n_tasks: int,
    base_hidden: Sequence[int],
    spec: SoftModSpec,
    out: int,
) -> Array:
    """One Soft Modularization network in ``module``'s scope (call from its compact method)."""
    n, b, widths = spec.modules, x.shape[0], tuple(base_hidden)
    h = x
    for i, width in enumerate(widths):
        h = _basic_dense(width, f"base_{i}")(h)
        if i < len(widths) - 1:
            h = nn.relu(h)
            module.sow("intermediates", f"hidden_base_{i}", h)
    onehot = jax.nn.one_hot(task_id, n_tasks, dtype=h.dtype)
    emb = _basic_dense(widths[-1], "task_embedding")(onehot) * h  # cond_ob
    h = nn.relu(h)
    module.sow("intermediates", f"hidden_base_{len(widths) - 1}", h)

    # Routing network: relu -> gating_0 -> relu -> ... -> gating_{G-1} (linear).
    g = emb
    for i in range(spec.gating_layers):
        g = nn.relu(g)
        if i:
            module.sow("intermediates", f"hidden_gating_{i - 1}", g)
        g = _basic_dense(spec.gating_hidden, f"gating_{i}")(g)
    g_act = nn.relu(g)
    if spec.gating_layers:
        module.sow("intermediates", f"hidden_gating_{spec.gating_layers - 1}", g_act)
    cond_width = g.shape[-1]

    weights = [jax.nn.softmax(_last_dense(n * n, "route_0")(g_act).reshape(b, n, n), axis=-1)]
    for layer in range(1, spec.layers - 1):
        prev = jnp.concatenate([w.reshape(b, n * n) for w in weights], axis=-1)
        cond = nn.relu(_basic_dense(cond_width, f"route_cond_{layer}")(prev) * g)
        logits = _last_dense(n * n, f"route_{layer}")(cond).reshape(b, n, n)
        weights.append(jax.nn.softmax(logits, axis=-1))
    prev = jnp.concatenate([w.reshape(b, n * n) for w in weights], axis=-1)
    cond = nn.relu(_basic_dense(cond_width, "route_cond_last")(prev) * g)
    last_weights = jax.nn.softmax(_last_dense(n, "route_last")(cond), axis=-1)
    for layer, w in enumerate(weights):
        module.sow("routing", f"weights_{layer}", w)
    module.sow("routing", "last_weights", last_weights)

    # Base network of modules, softly routed layer to layer. The n modules of a layer are one
    # ModuleLayer (kernel [n, in, hid]): one batched matmul per layer instead of n small ones
    # (the official code loops over modules; its TODO suggests a 1x1 convolution instead).
    hid = spec.module_hidden
    outs = ModuleLayer(n, hid, name="modules_0")(jnp.broadcast_to(h[:, None], (b, n, h.shape[-1])))
    for layer in range(1, spec.layers):
        # module j of this layer reads sum_k W[j, k] out_k of the previous layer's modules
        mixed = nn.relu(jnp.einsum("bjk,bkh->bjh", weights[layer - 1], outs))  # [B, n, hid]
        module.sow("intermediates", f"hidden_modules_{layer}", mixed.reshape(b, n * hid))
        outs = ModuleLayer(n, hid, name=f"modules_{layer}")(mixed)
    features = nn.relu(jnp.einsum("bk,bkh->bh", last_weights, outs))
    module.sow("intermediates", "features", features)
    return _last_dense(out, "head")(features)


class SoftModNet(nn.Module):
    """One Soft Modularization network (``ModularGatedCascadeCondNet``), ``[B, in] -> [B, out]``.

    Parameters: ``base_{i}`` (the base MLP), ``task_embedding``, ``gating_{i}``, ``route_{l}``
    (``l < layers - 1``; ``n*n`` routing logits), ``route_cond_{l}`` (``1 <= l < layers - 1``),
    ``route_cond_last``, ``route_last`` (``n`` pooling logits), ``modules_{l}`` (``ModuleLayer``:
    the layer's n modules, kernel ``[n, in, module_hidden]``), ``head``.
    """

    n_tasks: int
    out: int
    base_hidden: Sequence[int] = (400, 400)
    spec: SoftModSpec = SOFTMOD_MT10

    @nn.compact
    def __call__(self, x: Array, task_id: Array, task_major: bool = False) -> Array:
        del task_major  # nothing is per task but the embedding's one-hot input
        return _softmod(self, x, task_id, self.n_tasks, self.base_hidden, self.spec, self.out)


class SoftModActor(nn.Module):
    """``(mean, log_std)``, each ``[B, action_dim]``, from one Soft Modularization network."""

    n_tasks: int
    action_dim: int
    base_hidden: Sequence[int] = (400, 400)
    spec: SoftModSpec = SOFTMOD_MT10
    log_std_min: float = LOG_STD_MIN
    log_std_max: float = LOG_STD_MAX

    @nn.compact
    def __call__(self, obs: Array, task_id: Array, task_major: bool = False) -> tuple[Array, Array]:
        del task_major
        out = _softmod(
            self, obs, task_id, self.n_tasks, self.base_hidden, self.spec, 2 * self.action_dim
        )
        return _mean_log_std(out, self.log_std_min, self.log_std_max)


class SoftModTwinCritic(nn.Module):
    """Two independent Soft Modularization Q networks ``critic_0``, ``critic_1`` on
    ``concat(obs, action)``."""

    n_tasks: int
    base_hidden: Sequence[int] = (400, 400)
    spec: SoftModSpec = SOFTMOD_MT10

    @nn.compact
    def __call__(
        self, obs: Array, action: Array, task_id: Array, task_major: bool = False
    ) -> Array:
        x = jnp.concatenate([obs, action], axis=-1)
        qs = [
            SoftModNet(self.n_tasks, 1, tuple(self.base_hidden), self.spec, name=f"critic_{i}")(
                x, task_id, task_major
            )
            for i in range(2)
        ]
        return jnp.concatenate(qs, axis=-1)


__all__ = [
    "LOG_STD_MAX",
    "LOG_STD_MIN",
    "MOORE_EXPERTS",
    "SOFTMOD_MT10",
    "MooreSACActor",
    "MooreSACNet",
    "MooreSACTwinCritic",
    "SoftModActor",
    "SoftModNet",
    "SoftModSpec",
    "SoftModTwinCritic",
]
