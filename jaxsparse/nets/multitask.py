"""Multi-task PPO actor-critics for MiniGrid (MOORE code): MTPPO, MoE and MOORE.

All three map ``(obs [B, 7, 7, 3], task_id [B] int)`` to ``(logits [B, n_actions], value [B])``
with per-task actor and critic heads Linear(1024->128) Tanh Linear(128->out). With
``task_major=True`` the caller promises that the batch is T equal task-major blocks; each head
then runs one matmul per task instead of computing every task's head for every sample. With
``task_major=SINGLE_TASK`` (``"single"``) the caller promises that every sample is of task
``task_id[0]`` (a per-task block, as gradient surgery differentiates): one matmul with that task's
kernel.

Parameter layout (paths as the sparse core names them): ``encoder/...`` (shared by actor and
critic), or ``encoder/actor/...`` and ``encoder/critic/...`` with ``shared_encoder=False``; heads
``actor/Dense_{0,1}`` and ``critic/Dense_{0,1}`` with stacked per-task kernels ``[T, in, out]``.

Sown ``"intermediates"`` (read them with ``apply(..., mutable=["intermediates"])`` and
``flatten_intermediates``): ``<encoder>/conv_{i}`` (``<encoder>/expert_{k}/conv_{i}`` for
mixtures), ``actor/hidden``, ``critic/hidden`` (post-Tanh ``[B, 128]``) and ``features``
(``[B, 1024]``, the actor's features; plus ``critic_features`` when encoders are separate).

Task ids outside ``[0, n_tasks)`` cannot be checked under ``jit``: heads then return NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxsparse.nets.encoders import EXPERTS, MiniGridEncoder, MixtureEncoder
from jaxsparse.sparsity.checks import check_choice, check_int

Array = jax.Array
ARCHS = ("mtppo", "moe", "moore")
HIDDEN = 128
SINGLE_TASK = "single"  # task_major value: every sample of the batch is of task task_id[0]
TaskLayout = bool | Literal["single"]  # False: per-sample task ids; True: T task-major blocks


class TaskDense(nn.Module):
    """Per-task Dense: ``kernel [T, in, out]``, ``bias [T, out]``; sample b uses task_id[b]'s.

    For small T (3..10) we compute every task's output on the whole batch (one matmul, T times
    the FLOPs of one small layer) and pick each sample's row with ``take_along_axis``: gathering a
    per-sample kernel would instead copy B x in x out floats (1 GB for B=2000, 1024x128), and
    ``lax.switch`` does not batch. Each output column depends only on its own task's kernel.
    """

    n_tasks: int
    features: int
    # None: lecun normal over each task's [in, out] slice, as nn.Dense; an initializer given here
    # gets the whole [T, in, out] shape, so give it batch_axis=(0,) to keep T out of the fans.
    kernel_init: nn.initializers.Initializer | None = None

    @nn.compact
    def __call__(self, x: Array, task_id: Array, task_major: TaskLayout = False) -> Array:
        init = self.kernel_init
        if init is None:  # batch_axis keeps T out of the fan-in
            init = nn.initializers.lecun_normal(batch_axis=(0,))
        kernel = self.param("kernel", init, (self.n_tasks, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.n_tasks, self.features))
        if isinstance(task_major, str):
            if task_major != SINGLE_TASK:
                raise ValueError(f"task_major must be True, False or {SINGLE_TASK!r}")
            # The caller promises one task for the whole batch: its kernel only.
            t = task_id[0]
            return x @ kernel[t] + bias[t]
        if task_major:
            # The caller promises T equal task-major blocks (rows [t*B/T, (t+1)*B/T) are task t):
            # one matmul per task, no wasted FLOPs.
            t, b = self.n_tasks, x.shape[0]
            if b % t:
                raise ValueError(f"task_major needs a batch divisible by n_tasks={t}, got {b}")
            y = jnp.einsum("tbi,tio->tbo", x.reshape(t, b // t, -1), kernel) + bias[:, None]
            return y.reshape(b, self.features)
        y = jnp.einsum("bi,tio->bto", x, kernel) + bias  # [B, T, out]
        return jnp.take_along_axis(y, task_id[:, None, None], axis=1)[:, 0]


class TaskHead(nn.Module):
    """Per-task head Linear(in->hidden) [LayerNorm] Tanh Linear(hidden->out); sows ``hidden``.

    With ``layer_norm`` the LayerNorm has a per-task scale and bias (``ln_scale``, ``ln_bias``
    ``[T, hidden]``), so a task's head stays its own.
    """

    n_tasks: int
    out: int
    hidden: int = HIDDEN
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x: Array, task_id: Array, task_major: TaskLayout = False) -> Array:
        h = TaskDense(self.n_tasks, self.hidden, name="Dense_0")(x, task_id, task_major)
        if self.layer_norm:
            shape = (self.n_tasks, self.hidden)
            scale = self.param("ln_scale", nn.initializers.ones_init(), shape)
            bias = self.param("ln_bias", nn.initializers.zeros_init(), shape)
            h = nn.LayerNorm(use_scale=False, use_bias=False, name="LayerNorm_0")(h)
            h = h * scale[task_id] + bias[task_id]
        h = jnp.tanh(h)
        self.sow("intermediates", "hidden", h)
        return TaskDense(self.n_tasks, self.out, name="Dense_1")(h, task_id, task_major)


EncoderFactory = Callable[[str], Callable[[Array, Array], Array]]


class _EncoderPair(nn.Module):
    """Separate actor and critic encoders under one ``encoder`` scope (for MST overrides)."""

    make: EncoderFactory

    @nn.compact
    def __call__(self, obs: Array, task_id: Array) -> tuple[Array, Array]:
        return self.make("actor")(obs, task_id), self.make("critic")(obs, task_id)


def _check_task_id(task_id: Array, obs: Array) -> None:
    if task_id.shape != obs.shape[:1] or not jnp.issubdtype(task_id.dtype, jnp.integer):
        raise ValueError(
            f"task_id must be an integer array of shape [B]={obs.shape[:1]}, "
            f"got {task_id.dtype}{tuple(task_id.shape)}"
        )


def _actor_critic(
    net: nn.Module,
    obs: Array,
    task_id: Array,
    make_encoder: EncoderFactory,
    task_major: TaskLayout,
) -> tuple[Array, Array]:
    """Encoder(s) then per-task actor and critic heads; call inside ``net``'s compact method."""
    task_id = jnp.asarray(task_id)
    _check_task_id(task_id, obs)
    if net.shared_encoder:
        f_actor = f_critic = make_encoder("encoder")(obs, task_id)
    else:
        f_actor, f_critic = _EncoderPair(make_encoder, name="encoder")(obs, task_id)
        net.sow("intermediates", "critic_features", f_critic)
    net.sow("intermediates", "features", f_actor)
    head = dict(n_tasks=net.n_tasks, hidden=net.hidden, layer_norm=net.layer_norm)
    logits = TaskHead(out=net.n_actions, name="actor", **head)(f_actor, task_id, task_major)
    value = TaskHead(out=1, name="critic", **head)(f_critic, task_id, task_major)
    return logits, value[:, 0]


class MTPPO(nn.Module):
    """Multi-head PPO: one CNN encoder (Tanh), per-task actor and critic heads.

    ``shared_encoder=True`` (default, as SPEC "Networks"): actor and critic read one encoder.
    MOORE's code instead builds actor and critic as two separate networks; set False for that.
    """

    n_tasks: int
    n_actions: int
    layer_norm: bool = False
    shared_encoder: bool = True
    hidden: int = HIDDEN

    @nn.compact
    def __call__(
        self, obs: Array, task_id: Array, task_major: TaskLayout = False
    ) -> tuple[Array, Array]:
        def make(name: str) -> Callable[[Array, Array], Array]:
            enc = MiniGridEncoder(layer_norm=self.layer_norm, name=name)
            return lambda o, _t: enc(o)

        return _actor_critic(self, obs, task_id, make, task_major)


class MoE(nn.Module):
    """Mixture of ``n_experts`` CNN experts mixed by task weights, then per-task heads.

    ``shared_encoder=False`` (default) follows MOORE's MiniGrid PPO code, where the actor and the
    critic are two separate networks of the same class (paper_protocol.md, section 2).
    """

    n_tasks: int
    n_actions: int
    n_experts: int
    layer_norm: bool = False
    shared_encoder: bool = False
    hidden: int = HIDDEN
    orthogonal: bool = False

    @nn.compact
    def __call__(
        self, obs: Array, task_id: Array, task_major: TaskLayout = False
    ) -> tuple[Array, Array]:
        def make(name: str) -> MixtureEncoder:
            return MixtureEncoder(
                self.n_tasks, self.n_experts, self.orthogonal, self.layer_norm, name=name
            )

        return _actor_critic(self, obs, task_id, make, task_major)


class MOORE(MoE):
    """MoE with expert outputs orthonormalised per sample by Gram-Schmidt (Hendawy et al., 2024)."""

    orthogonal: bool = True


def make_network(
    arch: str,
    n_tasks: int,
    n_actions: int,
    n_experts: int | None = None,
    layer_norm: bool = False,
    shared_encoder: bool | None = None,
) -> nn.Module:
    """Build ``mtppo``, ``moe`` or ``moore``; ``n_experts=None`` takes ``EXPERTS[f"MT{n_tasks}"]``.

    ``shared_encoder=None`` keeps each class's default (MTPPO True, MoE/MOORE False).
    """
    check_choice("arch", arch, ARCHS)
    check_int("n_tasks", n_tasks, minimum=1)
    check_int("n_actions", n_actions, minimum=1)
    extra: dict[str, Any] = {"layer_norm": layer_norm}
    if shared_encoder is not None:
        extra["shared_encoder"] = shared_encoder
    if arch == "mtppo":
        if n_experts is not None:
            raise ValueError(f"n_experts is only for 'moe' and 'moore', got {n_experts!r}")
        return MTPPO(n_tasks, n_actions, **extra)
    if n_experts is None:
        n_experts = EXPERTS.get(f"MT{n_tasks}")
        if n_experts is None:
            raise ValueError(
                f"n_experts must be given for n_tasks={n_tasks} (defaults only for {EXPERTS})"
            )
    check_int("n_experts", n_experts, minimum=1)
    cls = MOORE if arch == "moore" else MoE
    return cls(n_tasks, n_actions, n_experts, **extra)


def flatten_intermediates(intermediates: Mapping[str, Any]) -> dict[str, Array]:
    """The sown ``"intermediates"`` collection as ``{"actor/hidden": h, ...}`` for the metrics.

    Accepts the collection or the whole mutable-state dict; repeated sows are concatenated along
    the batch axis.
    """
    inter = intermediates.get("intermediates", intermediates)
    flat = traverse_util.flatten_dict(inter, sep="/")
    return {k: v[0] if len(v) == 1 else jnp.concatenate(v, axis=0) for k, v in flat.items()}
