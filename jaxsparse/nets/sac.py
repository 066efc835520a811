"""Multi-head SAC networks for Meta-World (SPEC "Networks"): an actor and twin critics, each an
MLP of 3 hidden layers of 400 ReLU shared by all tasks with a per-task output layer
(``mtmhsac``). ``SACNetworks(arch=...)`` also builds MOORE-SAC (``mooresac``) and Soft
Modularization (``softmod``) from ``jaxsparse.nets.sac_archs``, behind the same interface.

Inputs are an observation vector ``obs [B, obs_dim]`` (Meta-World's observation already ends with
the one-hot task id) and, separately, the int task id ``task_id [B]`` that picks each sample's
output head. The output layer is ``jaxsparse.nets.multitask.TaskDense`` (kernel ``[T, in, out]``,
bias ``[T, out]``); with ``task_major=True`` the caller promises T equal task-major blocks and
each head runs one matmul per task.

Parameters (``SACNetworks.init``) are ``{"actor": ..., "critic": ...}`` without flax's ``params``
level, so the sparse core names the leaves ``actor/Dense_{i}/kernel``, ``actor/head/kernel``,
``critic/critic_{0,1}/Dense_{i}/kernel``, ``critic/critic_{0,1}/head/kernel``: a plan
``{"actor": GMP(...)}`` prunes the actor and leaves the critics dense.

The actor outputs a mean and a log-std per action dimension, the log-std clipped to
``[-20, 2]`` (a hard clip, as SPEC says), and acts through a tanh-squashed Gaussian: actions lie
in ``(-1, 1)``; environments rescale them to their bounds. Hidden activations are sown as
``"intermediates"`` (``hidden_{i}``) for the plasticity metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsparse.nets.multitask import TaskDense
from jaxsparse.nets.sac_archs import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    MOORE_EXPERTS,
    SOFTMOD_MT10,
    MooreSACActor,
    MooreSACTwinCritic,
    SoftModActor,
    SoftModSpec,
    SoftModTwinCritic,
)
from jaxsparse.sparsity.checks import check_choice, check_int

Array = jax.Array
PyTree = Any

HIDDEN = (400, 400, 400)
SAC_ARCHS = ("mtmhsac", "mooresac", "softmod")
# Default hidden widths per architecture: mtmhsac and MOORE's experts 3x400 (MOORE's MT10 run
# script); Soft Modularization's base network 2x400 (its MT10 configs' hidden_shapes).
DEFAULT_HIDDEN = {"mtmhsac": HIDDEN, "mooresac": HIDDEN, "softmod": (400, 400)}
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _mlp_with_head(
    module: nn.Module,
    x: Array,
    task_id: Array,
    task_major: bool,
    hidden: Sequence[int],
    n_tasks: int,
    out: int,
    masks: Sequence[Array] | None = None,
) -> Array:
    """``Dense_{i}`` (shared, ReLU) per width in ``hidden``, then the per-task ``head``, created
    in ``module``'s scope (call from its compact method). ``masks``: one ``[B, width]`` neuron
    mask per hidden layer (``jaxsparse.nets.maskgen``), multiplying its post-ReLU activations;
    the sown ``hidden_{i}`` are the activations before the mask (the neuron's own response, so a
    masked-out neuron does not count as dormant)."""
    if masks is not None and len(masks) != len(hidden):
        raise ValueError(f"masks: one per hidden layer ({len(hidden)}), got {len(masks)}")
    for i, width in enumerate(hidden):
        x = nn.relu(nn.Dense(width, name=f"Dense_{i}")(x))
        module.sow("intermediates", f"hidden_{i}", x)
        if masks is not None:
            x = x * masks[i]
    return TaskDense(n_tasks, out, name="head")(x, task_id, task_major)


class MultiHeadMLP(nn.Module):
    """``Dense_{i}`` (shared, ReLU) for each width in ``hidden``, then a per-task ``head``."""

    n_tasks: int
    out: int
    hidden: Sequence[int] = HIDDEN

    @nn.compact
    def __call__(
        self,
        x: Array,
        task_id: Array,
        task_major: bool = False,
        masks: Sequence[Array] | None = None,
    ) -> Array:
        return _mlp_with_head(
            self, x, task_id, task_major, self.hidden, self.n_tasks, self.out, masks
        )


class SACActor(nn.Module):
    """``(mean, log_std)``, each ``[B, action_dim]``; log-std clipped to ``[min, max]``."""

    n_tasks: int
    action_dim: int
    hidden: Sequence[int] = HIDDEN
    log_std_min: float = LOG_STD_MIN
    log_std_max: float = LOG_STD_MAX

    @nn.compact
    def __call__(
        self,
        obs: Array,
        task_id: Array,
        task_major: bool = False,
        masks: Sequence[Array] | None = None,
    ) -> tuple[Array, Array]:
        out = _mlp_with_head(
            self, obs, task_id, task_major, self.hidden, self.n_tasks, 2 * self.action_dim, masks
        )
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


class TwinCritic(nn.Module):
    """Two independent Q networks ``critic_0`` and ``critic_1`` on ``concat(obs, action)``:
    ``[B, 2]``."""

    n_tasks: int
    hidden: Sequence[int] = HIDDEN

    @nn.compact
    def __call__(
        self,
        obs: Array,
        action: Array,
        task_id: Array,
        task_major: bool = False,
        masks: Sequence[Sequence[Array]] | None = None,
    ) -> Array:
        """``masks``: None, or one sequence of per-layer neuron masks per critic (2)."""
        if masks is not None and len(masks) != 2:
            raise ValueError(f"masks: one sequence per critic (2), got {len(masks)}")
        x = jnp.concatenate([obs, action], axis=-1)
        qs = [
            MultiHeadMLP(self.n_tasks, 1, tuple(self.hidden), name=f"critic_{i}")(
                x, task_id, task_major, None if masks is None else masks[i]
            )
            for i in range(2)
        ]
        return jnp.concatenate(qs, axis=-1)


def _check_task_id(task_id: Array, obs: Array) -> Array:
    task_id = jnp.asarray(task_id)
    if task_id.shape != obs.shape[:1] or not jnp.issubdtype(task_id.dtype, jnp.integer):
        raise ValueError(
            f"task_id must be an integer array of shape [B]={obs.shape[:1]}, "
            f"got {task_id.dtype}{tuple(task_id.shape)}"
        )
    return task_id


@dataclass(frozen=True)
class SACNetworks:
    """The actor and the twin critics behind one small interface (parameters as a plain dict).

    ``arch``: ``mtmhsac`` (``SACActor``/``TwinCritic``, widths ``actor_hidden``/``critic_hidden``),
    ``mooresac`` (``n_experts`` MLP experts of those widths each) or ``softmod`` (base networks
    of those widths, module sizes from ``softmod``). ``obs_task_dims``: how many trailing columns
    of the observation are the one-hot task id (our Meta-World suites append it; 0: none);
    ``mooresac`` and ``softmod`` drop them (they take the task through their task encoder /
    embedding only, as the official codes), ``mtmhsac`` reads the observation whole.
    """

    n_tasks: int
    action_dim: int
    actor_hidden: Sequence[int] = HIDDEN
    critic_hidden: Sequence[int] = HIDDEN
    arch: str = "mtmhsac"
    n_experts: int = MOORE_EXPERTS
    softmod: SoftModSpec = SOFTMOD_MT10
    obs_task_dims: int = 0

    def __post_init__(self) -> None:
        check_int("n_tasks", self.n_tasks, minimum=1)
        check_int("action_dim", self.action_dim, minimum=1)
        check_choice("arch", self.arch, SAC_ARCHS)
        check_int("n_experts", self.n_experts, minimum=1)
        check_int("obs_task_dims", self.obs_task_dims, minimum=0)
        if not isinstance(self.softmod, SoftModSpec):
            raise TypeError(f"softmod must be a SoftModSpec, got {self.softmod!r}")
        for name in ("actor_hidden", "critic_hidden"):
            widths = tuple(getattr(self, name))
            if not widths:
                raise ValueError(f"{name} must name at least one hidden layer width")
            for w in widths:
                check_int(f"{name} width", w, minimum=1)
            if self.arch == "mooresac" and widths[-1] < self.n_experts:
                raise ValueError(
                    f"{name}[-1] ({widths[-1]}) must be at least n_experts ({self.n_experts}): "
                    "Gram-Schmidt needs as many dimensions as experts"
                )
            object.__setattr__(self, name, widths)

    @property
    def actor_module(self) -> nn.Module:
        if self.arch == "mooresac":
            return MooreSACActor(self.n_tasks, self.action_dim, self.n_experts, self.actor_hidden)
        if self.arch == "softmod":
            return SoftModActor(self.n_tasks, self.action_dim, self.actor_hidden, self.softmod)
        return SACActor(self.n_tasks, self.action_dim, self.actor_hidden)

    @property
    def critic_module(self) -> nn.Module:
        if self.arch == "mooresac":
            return MooreSACTwinCritic(self.n_tasks, self.n_experts, self.critic_hidden)
        if self.arch == "softmod":
            return SoftModTwinCritic(self.n_tasks, self.critic_hidden, self.softmod)
        return TwinCritic(self.n_tasks, self.critic_hidden)

    @property
    def actor_features(self) -> str:
        """The sown ``"intermediates"`` name (``flatten_intermediates``) of the actor's last
        hidden layer, the input of its output layer (its effective rank is a diagnostic)."""
        if self.arch == "mtmhsac":
            return f"hidden_{len(self.actor_hidden) - 1}"
        return "features"

    @property
    def critic_features(self) -> str:
        """As ``actor_features``, for the first critic (``critic_0/...``)."""
        if self.arch == "mtmhsac":
            return f"critic_0/hidden_{len(self.critic_hidden) - 1}"
        return "critic_0/features"

    def state(self, obs: Array) -> Array:
        """What the networks read of ``obs``: all of it (``mtmhsac``), or without the trailing
        ``obs_task_dims`` one-hot columns."""
        k = self.obs_task_dims
        if self.arch == "mtmhsac" or not k:
            return obs
        if obs.shape[-1] <= k:
            raise ValueError(
                f"obs has {obs.shape[-1]} columns; cannot drop obs_task_dims={k} task-id columns"
            )
        return obs[..., : obs.shape[-1] - k]

    def _check_masks(self, kwargs: dict[str, Any]) -> None:
        if kwargs.get("masks") is not None and self.arch != "mtmhsac":
            raise ValueError(
                f"neuron masks (the mask generator) need arch 'mtmhsac', got {self.arch!r}"
            )
        if "masks" in kwargs and kwargs["masks"] is None:
            del kwargs["masks"]

    def init(self, key: Array, obs: Array, task_id: Array) -> dict[str, PyTree]:
        """``{"actor": ..., "critic": ...}`` for observations like ``obs [B, obs_dim]``."""
        task_id = _check_task_id(task_id, obs)
        k_actor, k_critic = jax.random.split(key)
        obs = self.state(obs)
        action = jnp.zeros((obs.shape[0], self.action_dim), jnp.float32)
        actor = self.actor_module.init(k_actor, obs, task_id)["params"]
        critic = self.critic_module.init(k_critic, obs, action, task_id)["params"]
        return {"actor": actor, "critic": critic}

    def actor(
        self, params: PyTree, obs: Array, task_id: Array, task_major: bool = False, **kwargs: Any
    ) -> Any:
        """``(mean, log_std)`` from the actor's parameters (``params["actor"]``); ``masks=``
        (``mtmhsac`` only): one ``[B, width]`` neuron mask per hidden layer."""
        task_id = _check_task_id(task_id, obs)
        self._check_masks(kwargs)
        return self.actor_module.apply(
            {"params": params}, self.state(obs), task_id, task_major, **kwargs
        )

    def critic(
        self,
        params: PyTree,
        obs: Array,
        action: Array,
        task_id: Array,
        task_major: bool = False,
        **kwargs: Any,
    ) -> Any:
        """``Q [B, 2]`` from the critics' parameters (``params["critic"]`` or a target copy);
        ``masks=`` (``mtmhsac`` only): per critic, one neuron mask per hidden layer."""
        task_id = _check_task_id(task_id, obs)
        self._check_masks(kwargs)
        return self.critic_module.apply(
            {"params": params}, self.state(obs), action, task_id, task_major, **kwargs
        )


def tanh_log_det_jacobian(pre_tanh: Array) -> Array:
    """``log(1 - tanh(u)^2)`` summed over the last axis, computed stably as
    ``2 (log 2 - u - softplus(-2u))``."""
    return jnp.sum(2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)), axis=-1)


def tanh_gaussian_sample(mean: Array, log_std: Array, noise: Array) -> tuple[Array, Array]:
    """Reparameterised sample of the tanh-squashed diagonal Gaussian and its log-density.

    ``u = mean + exp(log_std) * noise`` (``noise`` standard normal, same shape), ``a = tanh(u)``,
    ``log pi(a) = sum_i [log N(u_i; mean_i, std_i)] - sum_i log(1 - tanh(u_i)^2)``: ``[B, A]``
    actions and ``[B]`` log-probabilities.
    """
    pre_tanh = mean + jnp.exp(log_std) * noise
    gaussian = jnp.sum(-0.5 * jnp.square(noise) - log_std - _HALF_LOG_2PI, axis=-1)
    return jnp.tanh(pre_tanh), gaussian - tanh_log_det_jacobian(pre_tanh)


def deterministic_action(mean: Array) -> Array:
    """The evaluation action: ``tanh(mean)``."""
    return jnp.tanh(mean)
