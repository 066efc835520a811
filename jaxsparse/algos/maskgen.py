"""The neuron-level mask generator inside multi-task SAC (SPEC item 3): ``MaskGenConfig`` (its
settings) and ``MaskGen`` (its networks, optimisers and the jitted pieces ``jaxsparse.algos.sac``
calls). Pass ``SAC(..., maskgen=MaskGenConfig(ratio=0.8))``.

Networks (``jaxsparse.nets.maskgen``): one generator for the actor (a mask per hidden layer) and
one for the twin critics (one head per critic and layer); the target critics use the critics'
generator (on the next states). Their input is the state without the one-hot task columns our
Meta-World suites append, the task one-hot and the ratio.

Training (everything inside SAC's jitted update):
- every gradient step, the SAC losses run through the masked networks (masks drawn with Gumbel
  noise), and their gradients reach the generators through the straight-through top-k: the
  critic loss trains the critics' generator, the actor loss the actor's (the masks of the other
  side's network are held fixed, as the networks' parameters are). One optimiser (gradient
  clipping, Adam at ``lr``) updates both generators with the sum.
- every ``every`` gradient steps, a similarity phase: ``vae_steps`` Adam steps of the trajectory
  VAE on fresh segments of every task (``replay_segments``: ``segments_per_task`` runs of
  ``segment_length`` consecutive steps of one environment, from the replay buffer, which is the
  on-device trajectory store), then the tasks' policy similarity from the VAE, then ``sim_steps``
  Adam steps (``sim_lr``; the reference code: 5 steps at 1e-4) of both generators on the
  mask-similarity loss over a common batch of ``sim_states`` states from the buffer, with the
  deterministic masks (the generators' preferred masks; Gumbel noise would make every task's
  mean mask alike).
Segments are cut by position in the buffer, so a segment may straddle the end of an episode
(one in ``max_episode_steps / segment_length`` at most; with Meta-World's 500-step episodes and
10-step segments, 1 in 50).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsparse.algos.replay import ReplayState
from jaxsparse.nets.maskgen import (
    MaskGenerator,
    Masks,
    TrajectoryVAE,
    active_neurons,
    generate_masks,
    mask_similarity,
    policy_similarity,
    similarity_loss,
    vae_loss,
)
from jaxsparse.sparsity.checks import check_int, check_range

Array = jax.Array
PyTree = Any
NETS = ("actor", "critic")


@dataclass(frozen=True)
class MaskGenConfig:
    """Settings of the mask generator; the defaults follow the reference code where it has one
    (ratio 0.8, generator hidden 256, similarity 5 Adam steps at 1e-4)."""

    ratio: float = 0.8  # fraction of every hidden layer's neurons masked off per sample
    hidden: tuple[int, ...] = (256, 256)  # generator body
    temperature: float = 1.0  # of the soft relaxation (the straight-through gradient)
    lr: float = 3e-4  # generators, on the SAC losses
    every: int = 1000  # gradient steps between similarity phases
    sim_steps: int = 5
    sim_lr: float = 1e-4
    sim_states: int = 256  # the common batch of states of the mask similarity
    segment_length: int = 10
    segments_per_task: int = 32
    vae_latent: int = 8
    vae_hidden: int = 256
    vae_lr: float = 1e-3
    vae_steps: int = 5
    vae_beta: float = 1.0

    def __post_init__(self) -> None:
        check_range("maskgen.ratio", self.ratio, 0.0, 1.0, high_open=True)
        check_range("maskgen.temperature", self.temperature, 0.0, np.inf, low_open=True)
        for name in ("lr", "sim_lr", "vae_lr"):
            check_range(f"maskgen.{name}", getattr(self, name), 0.0, np.inf, low_open=True)
        check_range("maskgen.vae_beta", self.vae_beta, 0.0, np.inf)
        for name in ("every", "sim_states", "segment_length", "segments_per_task"):
            check_int(f"maskgen.{name}", getattr(self, name), minimum=1)
        for name in ("vae_latent", "vae_hidden"):
            check_int(f"maskgen.{name}", getattr(self, name), minimum=1)
        for name in ("sim_steps", "vae_steps"):
            check_int(f"maskgen.{name}", getattr(self, name), minimum=0)
        hidden = tuple(self.hidden)
        if not hidden:
            raise ValueError("maskgen.hidden must name at least one layer width")
        for w in hidden:
            check_int("maskgen.hidden width", w, minimum=1)
        object.__setattr__(self, "hidden", hidden)


def replay_segments(
    buffer: ReplayState, key: Array, per_task: int, length: int, envs_per_task: int
) -> PyTree:
    """``per_task`` segments of ``length`` consecutive suite steps of one environment, for every
    task: leaves ``[T, per_task, length, ...]``, oldest step first.

    ``replay_add`` writes environment ``j`` of step ``s`` to row ``(k s + j) mod C`` (``k`` =
    ``envs_per_task``), so the step ``b`` steps back from the newest (``b = 1``) of environment
    ``j`` is row ``(pos - k b + j) mod C``; the newest ``size // k`` steps are intact. Segments
    start uniformly among those (the buffer must hold ``length`` steps)."""
    T, C, k = buffer.num_tasks, buffer.capacity, envs_per_task
    k_env, k_back = jax.random.split(key)
    env = jax.random.randint(k_env, (T, per_task), 0, k)
    steps = buffer.size // k
    back = jax.random.randint(k_back, (T, per_task), 0, jnp.maximum(steps - length, 0) + 1)
    offsets = jnp.arange(length)  # oldest first: b = back + length - l
    b = back[..., None] + length - offsets
    rows = (buffer.pos - k * b + env[..., None]) % C
    tasks = jnp.arange(T)[:, None, None]
    return jax.tree.map(lambda x: x[tasks, rows], buffer.data)


def replay_states(buffer: ReplayState, key: Array, n: int) -> Array:
    """``n`` observations drawn uniformly from the filled rows of all tasks: ``[n, obs_dim]``."""
    T = buffer.num_tasks
    k_task, k_row = jax.random.split(key)
    task = jax.random.randint(k_task, (n,), 0, T)
    row = jax.random.randint(k_row, (n,), 0, jnp.maximum(buffer.size, 1))
    return buffer.data["obs"][task, row]


class MaskGen:
    """The generators, the trajectory VAE and their optimisers for one SAC configuration.

    ``state_dim``: the columns of the observation the generators and the VAE read (the
    observation without trailing one-hot task columns: ``task_dims`` of them are dropped)."""

    def __init__(
        self,
        config: MaskGenConfig,
        n_tasks: int,
        actor_hidden: Sequence[int],
        critic_hidden: Sequence[int],
        obs_dim: int,
        action_dim: int,
        task_dims: int = 0,
        max_grad_norm: float | None = 1.0,
    ) -> None:
        self.config = config
        self.n_tasks = n_tasks
        self.widths = {"actor": (tuple(actor_hidden),), "critic": (tuple(critic_hidden),) * 2}
        for ws in self.widths.values():
            for w in ws[0]:
                active_neurons(config.ratio, w)  # every layer keeps at least one neuron
        if obs_dim <= task_dims:
            raise ValueError(f"obs_dim ({obs_dim}) must exceed the task columns ({task_dims})")
        self.task_dims = task_dims
        self.state_dim = obs_dim - task_dims
        self.action_dim = action_dim
        self.modules = {
            name: MaskGenerator(ws, n_tasks, config.hidden) for name, ws in self.widths.items()
        }
        self.vae = TrajectoryVAE(self.state_dim, action_dim, config.vae_latent, config.vae_hidden)
        adam = optax.adam(config.lr)
        self.tx = (
            adam
            if max_grad_norm is None
            else optax.chain(optax.clip_by_global_norm(max_grad_norm), adam)
        )
        self.sim_tx = optax.adam(config.sim_lr)
        self.vae_tx = optax.adam(config.vae_lr)

    # ----------------------------------------------------------------- params
    def init(self, key: Array) -> tuple[dict[str, PyTree], dict[str, PyTree]]:
        """``({"mask_gen": {"actor", "critic"}, "vae": ...}, their optimiser states
        {"mask_gen", "mask_sim", "vae"})``."""
        cfg = self.config
        k_actor, k_critic, k_vae, k_z = jax.random.split(key, 4)
        state = jnp.zeros((1, self.state_dim), jnp.float32)
        task = jnp.zeros((1,), jnp.int32)
        gen = {
            "actor": self.modules["actor"].init(k_actor, state, task, cfg.ratio)["params"],
            "critic": self.modules["critic"].init(k_critic, state, task, cfg.ratio)["params"],
        }
        seg = jnp.zeros((1, cfg.segment_length, self.state_dim + self.action_dim), jnp.float32)
        vae = self.vae.init(k_vae, seg, k_z)["params"]
        params = {"mask_gen": gen, "vae": vae}
        opt = {
            "mask_gen": self.tx.init(gen),
            "mask_sim": self.sim_tx.init(gen),
            "vae": self.vae_tx.init(vae),
        }
        return params, opt

    def state(self, obs: Array) -> Array:
        """The columns of ``obs`` the generators and the VAE read."""
        return obs[..., : obs.shape[-1] - self.task_dims] if self.task_dims else obs

    # ------------------------------------------------------------------ masks
    def masks(
        self, gen: PyTree, name: str, obs: Array, task: Array, key: Array | None
    ) -> Masks | tuple[Masks, Masks]:
        """Neuron masks of network ``name`` for ``obs [B, obs_dim]`` and ``task [B]``: the
        actor's per-layer masks, or the two critics' (a pair). ``key``: Gumbel noise (training);
        None: the deterministic top-k (evaluation)."""
        cfg = self.config
        logits = self.modules[name].apply({"params": gen[name]}, self.state(obs), task, cfg.ratio)
        out = generate_masks(logits, cfg.ratio, key, cfg.temperature)
        return out[0] if name == "actor" else out

    def task_masks(self, gen: PyTree, name: str, obs: Array, key: Array | None) -> Array:
        """Every task's masks of network ``name`` on the same states ``obs [B, obs_dim]``,
        averaged over the states, all layers (and both critics) concatenated: ``[T, F]``."""

        def one(t: Array, k: Array | None) -> Array:
            task = jnp.full((obs.shape[0],), t, jnp.int32)
            masks = self.masks(gen, name, obs, task, k)
            layers = masks if name == "actor" else (*masks[0], *masks[1])
            return jnp.concatenate([m.mean(axis=0) for m in layers])

        tasks = jnp.arange(self.n_tasks)
        if key is None:
            return jax.vmap(lambda t: one(t, None))(tasks)
        return jax.vmap(one)(tasks, jax.random.split(key, self.n_tasks))

    def active_per_task(self, masks: Masks | tuple[Masks, Masks], task: Array) -> Array:
        """Neurons each task uses in ``masks`` (``masks(...)``'s output for samples of tasks
        ``task [B]``; a neuron on for at least one of the task's samples counts):
        ``[T, layers]`` (for the critics' pair: ``critic_0``'s layers)."""
        layers = masks[0] if isinstance(masks[0], tuple) else masks
        onehot = jax.nn.one_hot(task, self.n_tasks, dtype=jnp.float32)  # [B, T]
        used = [(onehot.T @ m) > 0 for m in layers]  # [T, width] each
        return jnp.stack([u.sum(axis=-1) for u in used], axis=-1).astype(jnp.int32)

    # ------------------------------------------------------------- similarity
    def segments(self, buffer: ReplayState, key: Array, envs_per_task: int) -> Array:
        """``[T, M, L, state_dim + action_dim]`` trajectory segments of every task."""
        cfg = self.config
        seg = replay_segments(buffer, key, cfg.segments_per_task, cfg.segment_length, envs_per_task)
        return jnp.concatenate([self.state(seg["obs"]), seg["action"]], axis=-1)

    def policy_similarity(self, vae: PyTree, segments: Array) -> Array:
        """``[T, T]`` policy similarity of the tasks from their segments ``[T, M, L, D]``."""
        T, M = segments.shape[:2]
        mu, logvar = self.vae.apply(
            {"params": vae}, segments.reshape(T * M, *segments.shape[2:]), method="encode"
        )
        return policy_similarity(mu.reshape(T, M, -1), logvar.reshape(T, M, -1))

    def mask_similarity(self, gen: PyTree, obs: Array, key: Array | None) -> dict[str, Array]:
        """``{"actor": [T, T], "critic": [T, T]}`` mask similarity on the states ``obs``."""
        keys = (None, None) if key is None else tuple(jax.random.split(key))
        return {
            name: mask_similarity(self.task_masks(gen, name, obs, k))
            for name, k in zip(NETS, keys, strict=True)
        }

    def similarity_loss(self, gen: PyTree, obs: Array, policy_sim: Array) -> Array:
        """The mask-similarity loss of both generators (summed), on their deterministic masks:
        Gumbel noise would make every task's mean mask alike and hide what the generator
        prefers (the gradient still flows through the straight-through relaxation)."""
        sims = self.mask_similarity(gen, obs, None)
        return sum(similarity_loss(s, policy_sim) for s in sims.values())

    def train_vae(
        self, vae: PyTree, opt: PyTree, segments: Array, key: Array
    ) -> tuple[PyTree, PyTree, Array]:
        """``vae_steps`` Adam steps on ``segments [T, M, L, D]``; returns the mean loss."""
        cfg = self.config
        flat = segments.reshape(-1, *segments.shape[2:])

        def step(carry, k):
            p, o = carry
            loss, g = jax.value_and_grad(lambda q: vae_loss(self.vae, q, flat, k, cfg.vae_beta))(p)
            upd, o = self.vae_tx.update(g, o, p)
            return (optax.apply_updates(p, upd), o), loss

        if cfg.vae_steps == 0:
            return vae, opt, jnp.float32(jnp.nan)
        (vae, opt), losses = jax.lax.scan(step, (vae, opt), jax.random.split(key, cfg.vae_steps))
        return vae, opt, losses.mean()

    def train_similarity(
        self, gen: PyTree, opt: PyTree, obs: Array, policy_sim: Array
    ) -> tuple[PyTree, PyTree, Array]:
        """``sim_steps`` Adam steps of both generators on the similarity loss; returns the loss
        before the first step."""
        cfg = self.config

        def step(carry, _):
            p, o = carry
            loss, g = jax.value_and_grad(self.similarity_loss)(p, obs, policy_sim)
            upd, o = self.sim_tx.update(g, o, p)
            return (optax.apply_updates(p, upd), o), loss

        if cfg.sim_steps == 0:
            return gen, opt, self.similarity_loss(gen, obs, policy_sim)
        (gen, opt), losses = jax.lax.scan(step, (gen, opt), None, length=cfg.sim_steps)
        return gen, opt, losses[0]

    def similarity_phase(
        self,
        params: PyTree,
        opt_state: PyTree,
        buffer: ReplayState,
        key: Array,
        envs_per_task: int,
    ) -> tuple[PyTree, PyTree, dict[str, Array]]:
        """The VAE steps, then the generators' similarity steps (``params`` / ``opt_state``: SAC's
        dicts; their ``mask_gen``, ``vae``, ``mask_sim`` entries change)."""
        k_seg, k_vae, k_obs = jax.random.split(key, 3)
        segments = self.segments(buffer, k_seg, envs_per_task)
        vae, vae_opt, v_loss = self.train_vae(params["vae"], opt_state["vae"], segments, k_vae)
        policy_sim = self.policy_similarity(vae, segments)
        obs = replay_states(buffer, k_obs, self.config.sim_states)
        gen, sim_opt, s_loss = self.train_similarity(
            params["mask_gen"], opt_state["mask_sim"], obs, policy_sim
        )
        params = {**params, "mask_gen": gen, "vae": vae}
        opt_state = {**opt_state, "mask_sim": sim_opt, "vae": vae_opt}
        return params, opt_state, {"vae_loss": v_loss, "mask_sim_loss": s_loss}
