"""Meta-World on MJX: environment steps per second of each MT10 task and of the MT10 suite at
several batch sizes, beside the original `metaworld` environments on the same machine (issue 6).

Per task and batch size B: `jit(vmap(step))` compiled ahead of time (its compile time
reported), B episodes reset by a jitted single-environment reset (each its own reset vector),
a few warm-up steps, then `reps` timed runs of k consecutive steps with random actions (k chosen
so that a run lasts about `--run-seconds`); steps/s = B x k / median run time. No auto-reset is
needed: the runs stay within an episode's 500 steps. Batches above `--chunk` (256) are stepped as
`lax.map` over chunks of `vmap(step)` (`jaxsparse.algos.task_suite.chunked_vmap`): on the 2-core
CPU a single `vmap(step)` over more than 256 environments (320, 448 and 512 tried, reach-v3,
jax 0.10.2) never returns, every XLA thread idle (envs/metaworld/README.md, "CPU note").

The suite of the tasks timed (by default MT10; `jaxsparse.algos.task_suite.metaworld_suite`:
each task's block stepped with its own model, task one-hot appended, auto-reset under
`cond_any`) is timed the same way, one `jit(suite.step)` per B environments per task, for the
sizes in `--suite-sizes` (its compile holds every task's physics: minutes per size on CPU for
MT10); on CPU the suite itself steps blocks above 256 as chunks (`TaskSuite.max_vmap`), but
its one program's compile grows faster than its size there (at 512 envs per task `jit(reset)`
alone ran 47 min and 12 GB without finishing), so `--split-suite-sizes` (512 by default) times
the tasks as separately compiled programs called in turn, one suite step per round.

The original environments run one at a time (`metaworld` 3.0.0, MuJoCo on the CPU), random
actions, reset at the end of an episode.

    PYTHONPATH=. python benchmarks/metaworld_throughput.py   # tasks 1/64/512, suite 1/64, split 512
    PYTHONPATH=. python benchmarks/metaworld_throughput.py --sizes --suite-sizes  # split suite only
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import sys
import time
from importlib.metadata import version

import jax
import jax.numpy as jnp
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench import metaworld_reference_rates  # noqa: E402
from minigrid_env_throughput import cpu_name  # noqa: E402

from envs.metaworld import CPU_COMPILER_OPTIONS, TASK_NAMES, make  # noqa: E402
from jaxsparse.algos.task_suite import CPU_SAFE_BATCH, chunked_vmap  # noqa: E402


def _options() -> dict | None:
    return CPU_COMPILER_OPTIONS if jax.devices()[0].platform == "cpu" else None


def _time_runs(step_once, reps: int, run_seconds: float) -> tuple[int, list[float]]:
    """Warm up, choose k so that k steps take about `run_seconds`, time `reps` runs of k."""
    t = time.perf_counter()
    for _ in range(2):
        jax.block_until_ready(step_once())
    per_step = (time.perf_counter() - t) / 2
    k = int(max(2, min(200, run_seconds / max(per_step, 1e-6))))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(k):
            out = step_once()
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t)
    return k, times


def task_throughput(
    task: str, sizes: list[int], reps: int, run_seconds: float, chunk: int = CPU_SAFE_BATCH
) -> list[dict]:
    env = make(task)
    opts = _options()
    reset_one = jax.jit(env.reset, compiler_options=opts)
    t = time.perf_counter()
    jax.block_until_ready(reset_one(jax.random.key(0)).obs)
    reset_compile_s = time.perf_counter() - t
    rows = []
    for b in sizes:
        keys = jax.random.split(jax.random.key(b), b)
        state = jax.tree.map(lambda *x: jnp.stack(x), *[reset_one(k) for k in keys])
        actions = jax.random.uniform(jax.random.key(1), (b, 4), minval=-1.0, maxval=1.0)
        step = jax.jit(chunked_vmap(env.step, b, chunk), compiler_options=opts)
        t = time.perf_counter()
        compiled = step.lower(state, actions).compile()
        compile_s = time.perf_counter() - t
        box = {"state": state, "i": 0}
        flips = jnp.stack([actions, -actions])  # two action sets, alternated

        def step_once(compiled=compiled, box=box, flips=flips):
            box["i"] += 1
            box["state"] = compiled(box["state"], flips[box["i"] % 2])
            return box["state"].obs

        k, times = _time_runs(step_once, reps, run_seconds)
        finite = bool(np.isfinite(np.asarray(box["state"].obs)).all())
        rows.append(
            {
                "task": task,
                "batch": b,
                "chunk": min(b, chunk),
                "step_compile_s": compile_s,
                "reset_compile_s": reset_compile_s,
                "steps_per_run": k,
                "run_times_s": times,
                "env_steps_per_s": b * k / float(np.median(times)),
                "finite": finite,
            }
        )
        print(
            f"{task} x{b}: {rows[-1]['env_steps_per_s']:,.1f} env steps/s "
            f"(compile {compile_s:.0f} s, k={k})",
            flush=True,
        )
    return rows


def suite_throughput(
    tasks: list[str], sizes: list[int], reps: int, run_seconds: float
) -> list[dict]:
    from jaxsparse.algos.task_suite import metaworld_suite

    opts = _options()
    rows = []
    for n in sizes:
        suite = metaworld_suite(tasks, n)
        t = time.perf_counter()
        _, state = jax.jit(suite.reset, compiler_options=opts)(jax.random.key(0))
        jax.block_until_ready(state)
        reset_compile_s = time.perf_counter() - t
        actions = jax.random.uniform(
            jax.random.key(1), (suite.num_envs, suite.action_dim), minval=-1.0, maxval=1.0
        )
        step = jax.jit(suite.step, compiler_options=opts)
        t = time.perf_counter()
        compiled = step.lower(jax.random.key(2), state, actions).compile()
        compile_s = time.perf_counter() - t
        box = {"state": state, "i": 0}
        flips = jnp.stack([actions, -actions])

        def step_once(compiled=compiled, box=box, flips=flips):
            box["i"] += 1
            out = compiled(jax.random.key(box["i"]), box["state"], flips[box["i"] % 2])
            box["state"] = out.state
            return out.obs

        k, times = _time_runs(step_once, reps, run_seconds)
        rows.append(
            {
                "tasks": list(tasks),
                "envs_per_task": n,
                "total_envs": suite.num_envs,
                "max_vmap": suite.max_vmap,
                "step_compile_s": compile_s,
                "reset_compile_s": reset_compile_s,
                "steps_per_run": k,
                "run_times_s": times,
                "env_steps_per_s": suite.num_envs * k / float(np.median(times)),
            }
        )
        print(
            f"suite ({len(tasks)} tasks) x{n}: {rows[-1]['env_steps_per_s']:,.1f} env steps/s "
            f"(compile {compile_s:.0f} s, k={k})",
            flush=True,
        )
    return rows


def split_suite_throughput(
    tasks: list[str], sizes: list[int], reps: int, run_seconds: float, chunk: int
) -> list[dict]:
    """The tasks as separate programs, B envs each: one suite step is every task's own compiled
    `jit(chunked_vmap(step))` called in turn (no auto-reset: the runs stay within an episode).
    On CPU the one-program suite's compile grows faster than its size: at 512 envs per task its
    `jit(reset)` alone ran 47 min (12 GB) without finishing, killed (2026-12-07)."""
    opts = _options()
    rows = []
    for b in sizes:
        programs, states, flips = [], [], []
        compile_s = reset_compile_s = 0.0
        for i, task in enumerate(tasks):
            env = make(task)
            reset = jax.jit(chunked_vmap(env.reset, b, chunk), compiler_options=opts)
            t = time.perf_counter()
            states.append(jax.block_until_ready(reset(jax.random.split(jax.random.key(i), b))))
            reset_compile_s += time.perf_counter() - t
            actions = jax.random.uniform(jax.random.key(100 + i), (b, 4), minval=-1, maxval=1)
            flips.append(jnp.stack([actions, -actions]))
            t = time.perf_counter()
            programs.append(
                jax.jit(chunked_vmap(env.step, b, chunk), compiler_options=opts)
                .lower(states[-1], actions)
                .compile()
            )
            compile_s += time.perf_counter() - t
        box = {"i": 0}

        def step_once(programs=programs, states=states, flips=flips, box=box):
            box["i"] += 1
            for t, compiled in enumerate(programs):
                states[t] = compiled(states[t], flips[t][box["i"] % 2])
            return [s.obs for s in states]

        k, times = _time_runs(step_once, reps, run_seconds)
        total = b * len(tasks)
        rows.append(
            {
                "tasks": list(tasks),
                "envs_per_task": b,
                "total_envs": total,
                "chunk": min(b, chunk),
                "step_compile_s": compile_s,
                "reset_compile_s": reset_compile_s,
                "steps_per_run": k,
                "run_times_s": times,
                "env_steps_per_s": total * k / float(np.median(times)),
                "finite": all(bool(np.isfinite(np.asarray(s.obs)).all()) for s in states),
            }
        )
        print(
            f"split suite ({len(tasks)} programs) x{b}: {rows[-1]['env_steps_per_s']:,.1f} "
            f"env steps/s (compile {compile_s:.0f} s + reset {reset_compile_s:.0f} s, k={k})",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASK_NAMES))
    parser.add_argument("--sizes", nargs="*", type=int, default=[1, 64, 512])
    parser.add_argument("--suite-sizes", nargs="*", type=int, default=[1, 64])
    parser.add_argument(
        "--split-suite-sizes",
        nargs="*",
        type=int,
        default=[512],
        help="envs per task of the tasks run as separate programs, one after the other",
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--run-seconds", type=float, default=2.0)
    parser.add_argument("--reference-steps", type=int, default=2000)
    parser.add_argument(
        "--chunk",
        type=int,
        default=CPU_SAFE_BATCH,
        help="most envs per vmap(step) of one task (the suite: metaworld_suite's own cap)",
    )
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args()
    unknown = sorted(set(args.tasks) - set(TASK_NAMES))
    if unknown:
        parser.error(f"--tasks: unknown {unknown}; allowed: {list(TASK_NAMES)}")
    if any(b < 1 for b in args.sizes + args.suite_sizes + args.split_suite_sizes):
        parser.error("--sizes, --suite-sizes and --split-suite-sizes must be positive")
    if args.chunk < 1:
        parser.error(f"--chunk {args.chunk}: must be positive")

    stamp = datetime.datetime.now(datetime.UTC)
    device = jax.devices()[0]
    result = {
        "date": stamp.isoformat(timespec="seconds"),
        "device": f"{device.platform} ({device.device_kind})",
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": __import__("os").cpu_count(),
        "versions": {p: version(p) for p in ("jax", "mujoco", "mujoco-mjx", "metaworld")},
        "reference_env_steps_per_s": metaworld_reference_rates(args.reference_steps),
        "tasks": [],
        "suite": [],
        "split_suite": [],
    }
    print("reference:", {k: round(v) for k, v in result["reference_env_steps_per_s"].items()})
    out = args.out or HERE / "results" / f"metaworld_throughput-{device.platform}-"
    if args.out is None:
        out = pathlib.Path(f"{out}{stamp.strftime('%Y%m%dT%H%M%SZ')}.json")
    for task in args.tasks:
        result["tasks"] += task_throughput(
            task, args.sizes, args.reps, args.run_seconds, args.chunk
        )
        out.write_text(json.dumps(result, indent=1) + "\n")  # nothing lost if interrupted
    result["suite"] = suite_throughput(args.tasks, args.suite_sizes, args.reps, args.run_seconds)
    out.write_text(json.dumps(result, indent=1) + "\n")
    result["split_suite"] = split_suite_throughput(
        args.tasks, args.split_suite_sizes, args.reps, args.run_seconds, args.chunk
    )
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
