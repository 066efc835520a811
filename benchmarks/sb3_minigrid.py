"""Stable-Baselines3 PPO on the gymnasium `minigrid` package: the baseline beside our MTPPO.

The same network and PPO settings as ``jaxsparse`` MTPPO on a MiniGrid suite (MT3 / MT5 / MT7 of
``envs.minigrid.suites``), trained with SB3's ``PPO.learn`` for a given number of environment
steps and timed by the wall clock. Beside it, the random-action steps/s of the same VecEnv, so the
reader sees how much of SB3's time is the Python environment.

    python benchmarks/sb3_minigrid.py [--suite MT3] [--steps 12000] [--envs-per-task 16]
        [--vec-env dummy|subproc] [--threads N] [--heads grouped|all] [--check]

Needs the ``bench`` extra (``pip install -e ".[bench]"``: torch, stable-baselines3); torch and
SB3 are imported inside the functions, so ``benchmarks/bench.py`` can import this module without
them.

Environments. ``envs_per_task`` gymnasium envs per task (``MiniGrid-<task>-v0``), task-major
(env i runs task ``i // envs_per_task``), each ``ImgObsWrapper`` (the 7x7x3 symbolic partial
view, uint8) then ``Monitor``, in one ``DummyVecEnv`` (default) or a ``SubprocVecEnv``
(``forkserver``). The task id reaches the policy inside the observation: a ``Dict`` space
``{"image": Box(0, 255, (7, 7, 3), uint8), "task_id": Discrete(T)}``. SB3 one-hot encodes the
Discrete entry (our suite's ``task_one_hot``) and, seeing a channels-last uint8 image, wraps the
VecEnv in ``VecTransposeImage`` (NCHW for ``nn.Conv2d``); ``normalize_images=False`` keeps the raw
symbolic indices, as our encoder does. A Dict keeps the image untouched (an extra image plane
would widen the first conv and change the parameter count).

Network (``jaxsparse.nets.multitask.MTPPO`` with ``jaxsparse.nets.encoders.MiniGridEncoder``):
one shared CNN, Conv2d(3->16, 2x2) ReLU, Conv2d(16->32, 2x2) ReLU, Conv2d(32->64, 2x2) Tanh
(VALID: 7 -> 6 -> 5 -> 4), flatten to 1024 features; per-task actor head Linear(1024->128) Tanh
Linear(128->7) and critic head Linear(1024->128) Tanh Linear(128->1), picked by the sample's task
id. Parameters are stacked per task (``[T, in, out]``, ``[T, out]``): the actor's and critic's
first layers share one tensor ``w1 [T, 1024, 256]`` (columns :128 actor, 128: critic; the same
parameters as two ``[T, 1024, 128]`` kernels, one matmul instead of two). The per-sample choice
of head (``--heads``):

* ``grouped`` (default): sort the batch by task, one matmul per task on its rows, unsort. No
  wasted FLOPs; costs one row gather of the 1024 features (B x 1024 floats) and a ``bincount``.
* ``all``: every task's head on every sample (one ``[B, 1024] @ [1024, T * 256]`` matmul), then
  pick each sample's task (as ``TaskDense`` with ``task_major=False``): T times the FLOPs of the
  largest layer, which dominates the network (1024 x 256 multiply-adds per sample and task
  against about 190k for the whole CNN).

A third way, gathering each sample's kernel (``w1[task_id]``, then ``bmm``), would copy
B x 1024 x 256 floats per call (800 MB at B = 768) and is not offered. Our JAX trainer feeds
task-stratified minibatches and runs one matmul per task (``task_major=True``), which ``grouped``
matches in FLOPs. On this project's 2-core CPU, 1 torch thread, a 768-sample
minibatch step (forward, backward, Adam) took 104 ms ``grouped``, 149 ms ``all``.

The features extractor returns ``[1024 CNN features | one-hot task]`` so the
heads (SB3's ``mlp_extractor``) can read the task; ``action_net`` and ``value_net`` are identities
(the heads output the logits and the value), so the parameter count equals the JAX MTPPO's
(``--check`` verifies it and the head choice against a per-sample loop). Initialisation:
LeCun-normal kernels and zero biases, as the JAX side (irrelevant for timing).

PPO settings (``jaxsparse.run.config.PPOSection`` defaults): ``n_steps=125`` per env (2000 steps
per task per update with 16 envs per task; SB3 counts ``n_steps * n_envs = 6000`` per update for
MT3), 8 epochs, ``batch_size = 256 * T`` (768 for MT3), Adam lr 1e-3 (eps 1e-8, optax's),
gamma 0.99, GAE lambda 0.95, clip 0.2, ent_coef 0.01, advantage normalisation on, no value
clipping. Differences that do not change the environment-step count:

* Ours fits the critic for 1 epoch (batch 2000), then the policy for 8 epochs; SB3 minimises one
  combined loss (policy + ent_coef * entropy + vf_coef * value, vf_coef 0.5) for 8 epochs, so its
  critic head gets 8 epochs of gradient steps, in the same minibatches as the actor.
* Ours stratifies minibatches by task (256 per task, 7 full minibatches per epoch, the remaining
  208 samples per task unused that epoch); SB3 shuffles the whole buffer (about 256 per task on
  average) and runs 8 minibatches per epoch (7 of 768 and a truncated one of 624; SB3's warning
  about it is silenced).
* Ours normalises advantages per task over the rollout; SB3 per minibatch, over all tasks.
* No gradient clipping in ours; SB3 always calls ``clip_grad_norm_``, so we pass a huge
  ``max_grad_norm`` (1e10): the norm is computed (a small cost) but never clips.

Threads: torch uses ``os.cpu_count()`` threads unless ``threads`` says otherwise. On a machine
whose cores are busy with other work, torch's worker threads wait on each other and a small
network gets many times slower than with one thread (the batches here are tiny: 48 samples per
rollout step, 768 per minibatch); compare ``--threads 1`` there. The result records the load
average before and after ``learn``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `envs` and `jaxsparse` importable
    sys.path.insert(0, str(ROOT))

N_ACTIONS = 7  # MiniGrid's action space
FEATURES = 4 * 4 * 64  # CNN output, as encoders.FEATURE_DIM
HIDDEN = 128  # as multitask.HIDDEN
CHANNELS = (16, 32, 64)
HEAD_MODES = ("grouped", "all")
VEC_ENVS = ("dummy", "subproc")
INSTALL_HINT = 'pip install -e ".[bench]"'

# jaxsparse.run.config.PPOSection defaults (per task where it says so).
PPO_SETTINGS: dict[str, Any] = {
    "rollout_length": 125,
    "policy_epochs": 8,
    "policy_minibatch_per_task": 256,
    "lr": 1e-3,
    "adam_eps": 1e-8,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_eps": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,  # SB3's combined loss only
    "max_grad_norm": 1e10,  # SB3 needs a float: huge, never clips
    "normalize_advantage": True,
}


def _require_bench() -> tuple[Any, Any]:
    """Import torch and stable_baselines3 (and check gymnasium, minigrid), or raise ImportError
    naming the extra to install."""
    try:
        import gymnasium  # noqa: F401
        import minigrid  # noqa: F401
        import stable_baselines3
        import torch
    except ImportError as exc:
        raise ImportError(
            "benchmarks/sb3_minigrid.py needs torch, stable-baselines3 and minigrid "
            f"({exc.name} is missing): {INSTALL_HINT}"
        ) from exc
    return torch, stable_baselines3


def gym_id(task: str) -> str:
    """Gymnasium id of our MiniGrid task name: ``LavaGapS7`` -> ``MiniGrid-LavaGapS7-v0``."""
    return f"MiniGrid-{task}-v0"


def _suites() -> dict[str, tuple[str, ...]]:
    # Imported late: envs.minigrid imports JAX, and SubprocVecEnv's workers import this module.
    from envs.minigrid.suites import SUITES

    return SUITES


def suite_task_names(suite: str) -> tuple[str, ...]:
    """Task names of ``MT3``/``MT5``/``MT7`` (``envs.minigrid.suites.SUITES``)."""
    suites = _suites()
    if suite not in suites:
        raise ValueError(f"unknown suite {suite!r}; suite must be one of {list(suites)}")
    return suites[suite]


def make_task_env(task: str, task_index: int, n_tasks: int, seed: int) -> Any:
    """One ``MiniGrid-<task>-v0`` env: ImgObsWrapper, task id in a Dict observation, Monitor.

    Module-level (picklable with ``functools.partial``) so that ``SubprocVecEnv`` can build it.
    """
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
    from minigrid.wrappers import ImgObsWrapper
    from stable_baselines3.common.monitor import Monitor

    class TaskIdObs(gym.ObservationWrapper):
        """``{"image": the 7x7x3 view, "task_id": this env's task index}``."""

        def __init__(self, env: gym.Env) -> None:
            super().__init__(env)
            self.observation_space = gym.spaces.Dict(
                {"image": env.observation_space, "task_id": gym.spaces.Discrete(n_tasks)}
            )

        def observation(self, observation: Any) -> dict[str, Any]:
            return {"image": observation, "task_id": task_index}

    env = Monitor(TaskIdObs(ImgObsWrapper(gym.make(gym_id(task)))))
    env.reset(seed=seed)
    return env


def make_vec_env(suite: str, envs_per_task: int, vec_env: str = "dummy", seed: int = 0) -> Any:
    """The suite's envs, task-major, in a ``DummyVecEnv`` or a ``SubprocVecEnv``."""
    _require_bench()
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    if vec_env not in VEC_ENVS:
        raise ValueError(f"vec_env must be one of {list(VEC_ENVS)}, got {vec_env!r}")
    if isinstance(envs_per_task, bool) or not isinstance(envs_per_task, int) or envs_per_task < 1:
        raise ValueError(f"envs_per_task must be a positive int, got {envs_per_task!r}")
    tasks = suite_task_names(suite)
    fns = [
        partial(make_task_env, task, t, len(tasks), seed + t * envs_per_task + i)
        for t, task in enumerate(tasks)
        for i in range(envs_per_task)
    ]
    if vec_env == "dummy":
        return DummyVecEnv(fns)
    # The forkserver imports the workers' modules once (SB3's pulls in torch) and each worker
    # forks from it: 48 workers each importing torch took minutes on 2 busy cores. No effect if
    # this process's forkserver already runs. Each worker still re-imports the main script as
    # __mp_main__ (Python's rule; preloading "__main__" does not work in CPython 3.11), so a main
    # script with heavy top-level imports (JAX) makes the build slow; this file's are stdlib only.
    import multiprocessing.forkserver

    multiprocessing.forkserver.set_forkserver_preload(
        ["stable_baselines3.common.vec_env.subproc_vec_env", "minigrid.wrappers"]
    )
    return SubprocVecEnv(fns, start_method="forkserver")


def build_policy_class(n_tasks: int, heads: str = "grouped") -> type:
    """An SB3 ``ActorCriticPolicy`` subclass with our MTPPO network for ``n_tasks`` tasks."""
    torch, _ = _require_bench()
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    nn = torch.nn
    if heads not in HEAD_MODES:
        raise ValueError(f"heads must be one of {list(HEAD_MODES)}, got {heads!r}")

    def lecun_(w: Any, fan_in: int) -> None:
        """flax's lecun_normal: normal truncated at 2 std, rescaled to variance 1 / fan_in."""
        std = fan_in**-0.5 / 0.87962566103423978
        nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)

    class MiniGridCNN(BaseFeaturesExtractor):
        """MiniGridEncoder: 3 VALID 2x2 convs (ReLU, ReLU, Tanh) -> 1024, then the one-hot task."""

        def __init__(self, observation_space: Any) -> None:
            super().__init__(observation_space, features_dim=FEATURES + n_tasks)
            layers: list[Any] = []
            cin = 3
            for ch, act in zip(CHANNELS, (nn.ReLU, nn.ReLU, nn.Tanh), strict=True):
                conv = nn.Conv2d(cin, ch, kernel_size=2)
                lecun_(conv.weight, 4 * cin)
                nn.init.zeros_(conv.bias)
                layers += [conv, act()]
                cin = ch
            self.cnn = nn.Sequential(*layers, nn.Flatten())

        def forward(self, obs: dict[str, Any]) -> Any:
            # image: float [B, 3, 7, 7] (VecTransposeImage, not normalised); task_id: one-hot
            # [B, T] from the env, [B, 1, T] from the rollout buffer (it stores Discrete as [1]).
            task = obs["task_id"].reshape(obs["task_id"].shape[0], n_tasks)
            return torch.cat([self.cnn(obs["image"]), task], dim=1)

    class TaskHeads(nn.Module):
        """Per-task actor and critic heads; input ``[features | one-hot task]``."""

        latent_dim_pi = N_ACTIONS
        latent_dim_vf = 1

        def __init__(self) -> None:
            super().__init__()
            t, h = n_tasks, HIDDEN
            self.w1 = nn.Parameter(torch.empty(t, FEATURES, 2 * h))  # [:, :, :h] actor, [h:] critic
            self.b1 = nn.Parameter(torch.zeros(t, 2 * h))
            self.w_pi = nn.Parameter(torch.empty(t, h, N_ACTIONS))
            self.b_pi = nn.Parameter(torch.zeros(t, N_ACTIONS))
            self.w_vf = nn.Parameter(torch.empty(t, h, 1))
            self.b_vf = nn.Parameter(torch.zeros(t, 1))
            for w in (self.w1, self.w_pi, self.w_vf):
                lecun_(w, w.shape[1])

        def _heads(self, x: Any) -> tuple[Any, Any]:
            feats, task = x[:, :FEATURES], x[:, FEATURES:].argmax(dim=1)
            h = HIDDEN
            if heads == "all":
                b, t = feats.shape[0], n_tasks
                w1 = self.w1.permute(1, 0, 2).reshape(FEATURES, t * 2 * h)
                y = (feats @ w1).view(b, t, 2 * h) + self.b1
                hid = torch.tanh(y[torch.arange(b), task])  # [B, 2h], each sample's task
                pi = torch.einsum("bh,tho->bto", hid[:, :h], self.w_pi) + self.b_pi
                vf = torch.einsum("bh,tho->bto", hid[:, h:], self.w_vf) + self.b_vf
                rows = torch.arange(b)
                return pi[rows, task], vf[rows, task]
            order = torch.argsort(task, stable=True)
            counts = torch.bincount(task, minlength=n_tasks).tolist()
            chunks = feats.index_select(0, order).split(counts)
            pis, vfs = [], []
            for t, xt in enumerate(chunks):
                if xt.shape[0] == 0:
                    continue
                hid = torch.tanh(torch.addmm(self.b1[t], xt, self.w1[t]))
                pis.append(torch.addmm(self.b_pi[t], hid[:, :h], self.w_pi[t]))
                vfs.append(torch.addmm(self.b_vf[t], hid[:, h:], self.w_vf[t]))
            inverse = torch.argsort(order)
            return torch.cat(pis).index_select(0, inverse), torch.cat(vfs).index_select(0, inverse)

        def forward(self, x: Any) -> tuple[Any, Any]:
            return self._heads(x)

        def forward_actor(self, x: Any) -> Any:
            return self._heads(x)[0]

        def forward_critic(self, x: Any) -> Any:
            return self._heads(x)[1]

    class MTPPOPolicy(ActorCriticPolicy):
        """Shared MiniGrid CNN, per-task heads (``TaskHeads``); identity action/value nets."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("features_extractor_class", MiniGridCNN)
            kwargs.setdefault("normalize_images", False)
            kwargs.setdefault("ortho_init", False)
            super().__init__(*args, **kwargs)

        def _build_mlp_extractor(self) -> None:
            self.mlp_extractor = TaskHeads()

        def _build(self, lr_schedule: Any) -> None:
            self._build_mlp_extractor()
            self.action_net = nn.Identity()  # the heads output the logits
            self.value_net = nn.Identity()  # and the value [B, 1]
            self.optimizer = self.optimizer_class(
                self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
            )

    return MTPPOPolicy


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("stable_baselines3", "torch", "gymnasium", "minigrid", "numpy"):
        try:
            out[pkg] = version(pkg.replace("_", "-"))
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


def _ppo_kwargs(n_tasks: int) -> dict[str, Any]:
    s = PPO_SETTINGS
    return {
        "learning_rate": s["lr"],
        "n_steps": s["rollout_length"],
        "batch_size": s["policy_minibatch_per_task"] * n_tasks,
        "n_epochs": s["policy_epochs"],
        "gamma": s["gamma"],
        "gae_lambda": s["gae_lambda"],
        "clip_range": s["clip_eps"],
        "clip_range_vf": None,
        "normalize_advantage": s["normalize_advantage"],
        "ent_coef": s["ent_coef"],
        "vf_coef": s["vf_coef"],
        "max_grad_norm": s["max_grad_norm"],
        "target_kl": None,
    }


def build_model(
    suite: str = "MT3",
    envs_per_task: int = 16,
    vec_env: str = "dummy",
    heads: str = "grouped",
    seed: int = 0,
) -> Any:
    """SB3 ``PPO`` with our MTPPO policy and PPO settings on the suite's VecEnv (CPU)."""
    _, _ = _require_bench()
    from stable_baselines3 import PPO

    n_tasks = len(suite_task_names(suite))
    env = make_vec_env(suite, envs_per_task, vec_env, seed)
    policy = build_policy_class(n_tasks, heads)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*truncated mini-batch.*")
        return PPO(
            policy,
            env,
            policy_kwargs={"optimizer_kwargs": {"eps": PPO_SETTINGS["adam_eps"]}},
            device="cpu",
            seed=seed,
            verbose=0,
            **_ppo_kwargs(n_tasks),
        )


def env_only_throughput(vec: Any, steps: int, seed: int = 0) -> dict[str, float]:
    """Random-action environment steps/s of a VecEnv over about ``steps`` transitions."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = vec.num_envs
    iters = max(1, -(-steps // n))
    vec.reset()
    start = time.perf_counter()
    for _ in range(iters):
        vec.step(rng.integers(0, N_ACTIONS, size=n))
    elapsed = time.perf_counter() - start
    return {"steps": iters * n, "wall_s": elapsed, "steps_per_s": iters * n / elapsed}


def sb3_ppo_throughput(
    suite: str = "MT3",
    total_steps: int = 12_000,
    envs_per_task: int = 16,
    vec_env: str = "dummy",
    threads: int | None = None,
    heads: str = "grouped",
    env_only_steps: int = 6_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Time SB3 ``PPO.learn(total_steps)`` with our MTPPO network and settings on a suite.

    Build (envs, model) is timed apart; ``learn`` runs once, wall clock. ``total_steps`` counts
    environment transitions over all envs (SB3's ``num_timesteps``), rounded up to whole updates
    of ``125 * n_envs``. Then ``env_only_steps`` random-action steps of the same VecEnv.
    """
    torch, _ = _require_bench()
    from stable_baselines3.common.callbacks import BaseCallback

    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
    n_threads = (os.cpu_count() or 1) if threads is None else threads
    if n_threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    torch.set_num_threads(n_threads)
    tasks = suite_task_names(suite)

    class PhaseTimer(BaseCallback):
        """Sums the time spent collecting rollouts (the rest of ``learn`` is the update)."""

        def __init__(self) -> None:
            super().__init__()
            self.rollout_s, self.rollouts, self._t = 0.0, 0, 0.0

        def _on_rollout_start(self) -> None:
            self._t = time.perf_counter()

        def _on_rollout_end(self) -> None:
            self.rollout_s += time.perf_counter() - self._t
            self.rollouts += 1

        def _on_step(self) -> bool:
            return True

    load_before = os.getloadavg()
    start = time.perf_counter()
    model = build_model(suite, envs_per_task, vec_env, heads, seed)
    build_s = time.perf_counter() - start
    timer = PhaseTimer()
    start = time.perf_counter()
    model.learn(total_timesteps=total_steps, callback=timer)
    wall_s = time.perf_counter() - start
    load_after = os.getloadavg()
    env = model.get_env()
    env_only = env_only_throughput(env, env_only_steps, seed)
    env.close()

    n_envs = model.n_envs
    steps_per_update = model.n_steps * n_envs
    updates = model.num_timesteps // steps_per_update
    n_params = sum(p.numel() for p in model.policy.parameters())
    return {
        "suite": suite,
        "tasks": list(tasks),
        "gym_ids": [gym_id(t) for t in tasks],
        "requested_steps": total_steps,
        "total_steps": int(model.num_timesteps),
        "wall_s": wall_s,
        "env_steps_per_s": model.num_timesteps / wall_s,
        "updates": int(updates),
        "s_per_update": wall_s / max(updates, 1),
        "rollout_s": timer.rollout_s,
        "update_s": wall_s - timer.rollout_s,
        "build_s": build_s,
        "env_only": env_only,
        "env_only_steps_per_s": env_only["steps_per_s"],
        "versions": _versions(),
        "torch_threads": torch.get_num_threads(),
        "vec_env": vec_env,
        "heads": heads,
        "n_envs": n_envs,
        "envs_per_task": envs_per_task,
        "steps_per_update": steps_per_update,
        "policy_params": n_params,
        "settings": {**PPO_SETTINGS, **_ppo_kwargs(len(tasks)), "seed": seed},
        "machine": {
            "cpu_count": os.cpu_count(),
            "loadavg_before": list(load_before),
            "loadavg_after": list(load_after),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


def jax_mtppo_param_count(n_tasks: int) -> int:
    """Parameter count of ``jaxsparse`` MTPPO (``make_network("mtppo", ...)``)."""
    import jax
    import jax.numpy as jnp

    from jaxsparse.nets.multitask import make_network

    net = make_network("mtppo", n_tasks, N_ACTIONS)
    shapes = jax.eval_shape(
        net.init,
        jax.random.key(0),
        jnp.zeros((1, 7, 7, 3), jnp.uint8),
        jnp.zeros((1,), jnp.int32),
    )
    return int(sum(x.size for x in jax.tree.leaves(shapes)))


def check(suite: str = "MT3", envs_per_task: int = 2) -> dict[str, Any]:
    """Verify the policy: head choice against a per-sample loop (both ``heads`` modes, values and
    gradients), the VecEnv's task ids, and the parameter count against the JAX MTPPO's."""
    torch, _ = _require_bench()
    import numpy as np

    tasks = suite_task_names(suite)
    n_tasks = len(tasks)
    results: dict[str, Any] = {"suite": suite}
    models = {h: build_model(suite, envs_per_task, "dummy", h, seed=0) for h in HEAD_MODES}
    ref = models["grouped"].policy
    models["all"].policy.load_state_dict(ref.state_dict())

    # Observations from the real VecEnv (task-major), shuffled so that tasks are interleaved.
    vec = models["grouped"].get_env()
    obs = vec.reset()
    expected = np.repeat(np.arange(n_tasks), envs_per_task)
    if not np.array_equal(obs["task_id"], expected):
        raise AssertionError(f"VecEnv task ids {obs['task_id']} != {expected}")
    env_ids = [s.id for s in vec.get_attr("spec")]
    if env_ids != [gym_id(t) for t in tasks for _ in range(envs_per_task)]:
        raise AssertionError(f"VecEnv env ids {env_ids} are not task-major {list(tasks)}")
    perm = np.random.default_rng(0).permutation(vec.num_envs)
    obs = {k: v[perm] for k, v in obs.items()}
    obs_t, _ = ref.obs_to_tensor(obs)  # as in collect_rollouts: task_id [B]
    obs_buf = {**obs_t, "task_id": obs_t["task_id"].reshape(-1, 1)}  # as the buffer: [B, 1]
    actions = torch.as_tensor(np.random.default_rng(1).integers(0, N_ACTIONS, vec.num_envs))

    # Per-sample loop with each sample's own task's parameters.
    heads = ref.mlp_extractor
    with torch.no_grad():
        feats = ref.extract_features(obs_t)
        task = torch.as_tensor(obs["task_id"])
        loop_pi, loop_vf = [], []
        for b in range(feats.shape[0]):
            t, f = int(task[b]), feats[b, :FEATURES]
            hid_pi = torch.tanh(f @ heads.w1[t, :, :HIDDEN] + heads.b1[t, :HIDDEN])
            hid_vf = torch.tanh(f @ heads.w1[t, :, HIDDEN:] + heads.b1[t, HIDDEN:])
            loop_pi.append(hid_pi @ heads.w_pi[t] + heads.b_pi[t])
            loop_vf.append(hid_vf @ heads.w_vf[t] + heads.b_vf[t])
        loop_pi, loop_vf = torch.stack(loop_pi), torch.stack(loop_vf)
        # The wrong task's head must give different outputs, or the test proves nothing.
        other = (task + 1) % n_tasks
        wrong = torch.stack(
            [
                torch.tanh(feats[b, :FEATURES] @ heads.w1[o, :, :HIDDEN] + heads.b1[o, :HIDDEN])
                @ heads.w_pi[o]
                + heads.b_pi[o]
                for b, o in enumerate(other.tolist())
            ]
        )
        if n_tasks > 1 and torch.allclose(wrong, loop_pi, atol=1e-4):
            raise AssertionError("heads of different tasks agree: the check is vacuous")

    grads = {}
    for mode, model in models.items():
        pol = model.policy
        values, log_prob, entropy = pol.evaluate_actions(obs_buf, actions)
        logits = pol.get_distribution(obs_t).distribution.logits
        ref_logits = torch.log_softmax(loop_pi, dim=1)
        err_pi = float((logits - ref_logits).abs().max().detach())
        err_vf = float((values - loop_vf).abs().max().detach())
        err_pv = float((pol.predict_values(obs_t) - loop_vf).abs().max().detach())
        if max(err_pi, err_vf, err_pv) > 1e-4:
            raise AssertionError(
                f"{mode}: heads differ from the per-sample loop ({err_pi}, {err_vf})"
            )
        pol.zero_grad()
        (values.sum() + log_prob.sum() + entropy.sum()).backward()
        grads[mode] = {k: p.grad.clone() for k, p in pol.named_parameters()}
        results[f"{mode}_max_abs_err"] = max(err_pi, err_vf, err_pv)
    grad_err = max(float((grads["all"][k] - g).abs().max()) for k, g in grads["grouped"].items())
    if grad_err > 1e-4:
        raise AssertionError(f"gradients of the two head modes differ by {grad_err}")
    results["grad_max_abs_diff"] = grad_err
    for model in models.values():  # smoke test: one rollout and one update through SB3
        model.learn(total_timesteps=1)
        model.get_env().close()
    results["learn_smoke_steps"] = int(models["grouped"].num_timesteps)

    n_sb3 = sum(p.numel() for p in ref.parameters())
    n_jax = jax_mtppo_param_count(n_tasks)
    if n_sb3 != n_jax:
        raise AssertionError(f"SB3 policy has {n_sb3} parameters, JAX MTPPO {n_jax}")
    results.update(sb3_params=n_sb3, jax_params=n_jax, ok=True)
    return results


def main(argv: list[str] | None = None) -> None:
    """Print ``sb3_ppo_throughput`` (or ``check`` with ``--check``) as JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", default="MT3", choices=list(_suites()))
    p.add_argument("--steps", type=int, default=12_000, help="environment steps, all envs")
    p.add_argument("--envs-per-task", type=int, default=16)
    p.add_argument("--vec-env", default="dummy", choices=list(VEC_ENVS))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all CPUs)")
    p.add_argument("--heads", default="grouped", choices=list(HEAD_MODES))
    p.add_argument("--check", action="store_true", help="verify the policy against JAX MTPPO")
    args = p.parse_args(argv)
    if args.check:
        out = check(args.suite)
    else:
        out = sb3_ppo_throughput(
            args.suite, args.steps, args.envs_per_task, args.vec_env, args.threads, args.heads
        )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
