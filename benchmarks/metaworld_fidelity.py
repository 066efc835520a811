"""Fidelity of the MJX Meta-World port: Meta-World's scripted expert policies on the port and on
the reference `metaworld` package, from the same reset vectors, with the same action noise.

For each task, `--episodes` reset vectors are drawn by Meta-World's own sampler; each episode
runs the task's policy from `metaworld.policies` (plus Gaussian noise `--noise` on the action,
the same noise on both sides) for up to 500 steps. An episode succeeds if `info["success"]` is 1
at any step (Meta-World's evaluation terminates on success). Reported per task: success rate on
each side, mean return over the first `--return-steps` steps, the median step of first success,
and how many episodes agree. The port runs all episodes as one `vmap` batch; the policy runs on
the host between steps. Writes JSON.

    PYTHONPATH=. python benchmarks/metaworld_fidelity.py --tasks reach-v3 push-v3 --episodes 50
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import time
from importlib.metadata import version

import jax
import jax.numpy as jnp
import numpy as np

from envs.metaworld import CPU_COMPILER_OPTIONS, MAX_PATH_LENGTH, make
from envs.metaworld.reference import make_reference, reference_rand_vecs

HERE = pathlib.Path(__file__).parent


def _policy(task: str):
    from metaworld.policies import ENV_POLICY_MAP

    return ENV_POLICY_MAP[task]()


def run_reference(task: str, rand_vecs: np.ndarray, noise: np.ndarray, steps: int) -> dict:
    policy = _policy(task)
    success = np.zeros((len(rand_vecs), steps), bool)
    rewards = np.zeros((len(rand_vecs), steps))
    for e, rand_vec in enumerate(rand_vecs):
        env = make_reference(task, rand_vec)
        obs, _ = env.reset()
        for t in range(steps):
            action = np.clip(policy.get_action(obs) + noise[e, t], -1, 1).astype(np.float32)
            obs, reward, _, _, info = env.step(action)
            success[e, t], rewards[e, t] = bool(info["success"]), reward
        env.close()
    return {"success": success, "reward": rewards}


def run_port(task: str, rand_vecs: np.ndarray, noise: np.ndarray, steps: int) -> dict:
    env = make(task)
    policy = _policy(task)
    reset = jax.jit(jax.vmap(env.reset_to), compiler_options=CPU_COMPILER_OPTIONS)
    step = jax.jit(jax.vmap(env.step), compiler_options=CPU_COMPILER_OPTIONS)
    start = time.perf_counter()
    state = reset(jnp.asarray(rand_vecs))
    state = step(state, jnp.zeros((len(rand_vecs), 4)))  # compile (this step is discarded)
    jax.block_until_ready(state.obs)
    compile_s = time.perf_counter() - start
    state = reset(jnp.asarray(rand_vecs))
    success = np.zeros((len(rand_vecs), steps), bool)
    rewards = np.zeros((len(rand_vecs), steps))
    start = time.perf_counter()
    for t in range(steps):
        obs = np.asarray(state.obs, np.float64)
        actions = np.stack([policy.get_action(o) for o in obs]) + noise[:, t]
        state = step(state, jnp.asarray(np.clip(actions, -1, 1), jnp.float32))
        success[:, t] = np.asarray(state.metrics["success"]) > 0
        rewards[:, t] = np.asarray(state.reward)
    run_s = time.perf_counter() - start
    return {"success": success, "reward": rewards, "compile_s": compile_s, "run_s": run_s}


def summarise(result: dict, return_steps: int) -> dict:
    success = result["success"]
    ever = success.any(axis=1)
    first = np.where(ever, success.argmax(axis=1) + 1, -1)
    return {
        "success_rate": float(ever.mean()),
        "median_first_success_step": float(np.median(first[ever])) if ever.any() else None,
        "mean_return": float(result["reward"][:, :return_steps].sum(axis=1).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["reach-v3", "push-v3"])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--steps", type=int, default=MAX_PATH_LENGTH)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--return-steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "metaworld_fidelity.json")
    args = parser.parse_args()

    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": jax.devices()[0].device_kind,
        "platform": platform.platform(),
        "versions": {p: version(p) for p in ("metaworld", "mujoco", "mujoco-mjx", "jax")},
        "episodes": args.episodes,
        "steps": args.steps,
        "action_noise": args.noise,
        "tasks": {},
    }
    for i, task in enumerate(args.tasks):
        rand_vecs = reference_rand_vecs(task, args.episodes, seed=args.seed + i)
        rng = np.random.default_rng(args.seed + 100 + i)
        noise = rng.normal(0.0, args.noise, (args.episodes, args.steps, 4))
        start = time.perf_counter()
        ref = run_reference(task, rand_vecs, noise, args.steps)
        ref_s = time.perf_counter() - start
        port = run_port(task, rand_vecs, noise, args.steps)
        ours, theirs = summarise(port, args.return_steps), summarise(ref, args.return_steps)
        entry = {
            "port": ours,
            "reference": theirs,
            "success_rate_difference": ours["success_rate"] - theirs["success_rate"],
            "episodes_agreeing": int((port["success"].any(1) == ref["success"].any(1)).sum()),
            "port_compile_s": round(port["compile_s"], 1),
            "port_env_steps_per_s": round(args.episodes * args.steps / port["run_s"], 1),
            "reference_env_steps_per_s": round(args.episodes * args.steps / ref_s, 1),
        }
        report["tasks"][task] = entry
        print(task, json.dumps(entry), flush=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
