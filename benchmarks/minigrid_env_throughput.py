"""Random-action throughput of the MiniGrid suites (JAX) beside the reference `minigrid` package.

For each suite and each number of environments per task, a jitted `lax.scan` of random-action
suite steps (autoreset and episode statistics included) is timed after compilation; steps/s counts
every environment transition. The reference is the gymnasium `minigrid` package stepping one env
at a time in Python (its rate does not grow with the number of envs); a suite's reference rate is
one step of each task in turn. Writes JSON and appends a section to benchmarks/RESULTS.md.

    PYTHONPATH=. python benchmarks/minigrid_env_throughput.py [--sizes 1 64 512 4096]
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
import numpy as np

from envs.minigrid import SUITES, make_suite

HERE = pathlib.Path(__file__).parent


def time_suite(suite_name: str, n: int, min_seconds: float) -> dict[str, float]:
    """Steady-state random-action steps/s of one suite with n envs per task."""
    suite = make_suite(suite_name, n)
    steps = max(4, min(2000, 200_000 // suite.num_envs))

    def run(state, key):
        def body(state, k):
            k_act, k_step = jax.random.split(k)
            actions = jax.random.randint(k_act, (suite.num_envs,), 0, suite.num_actions)
            obs, state, reward, _, _ = suite.step(k_step, state, actions)
            # Use the observations, or XLA drops their computation as dead code.
            return state, reward.sum() + obs.image.sum(dtype=jax.numpy.float32)

        return jax.lax.scan(body, state, jax.random.split(key, steps))

    run = jax.jit(run)
    _, state = jax.jit(suite.reset)(jax.random.key(0))
    start = time.perf_counter()
    state, _ = jax.block_until_ready(run(state, jax.random.key(1)))
    compile_s = time.perf_counter() - start
    calls, start = 0, time.perf_counter()
    while True:
        state, _ = jax.block_until_ready(run(state, jax.random.key(2 + calls)))
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
    return {
        "envs_per_task": n,
        "total_envs": suite.num_envs,
        "steps_per_second": calls * steps * suite.num_envs / elapsed,
        "first_call_seconds_incl_compile": compile_s,
    }


def time_reference(task: str, seconds: float) -> float:
    """Random-action steps/s of one reference minigrid env (autoreset by hand)."""
    import gymnasium as gym
    import minigrid  # noqa: F401

    env = gym.make(f"MiniGrid-{task}-v0")
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for action in rng.integers(0, 7, 256):
            _, _, terminated, truncated, _ = env.step(int(action))
            if terminated or truncated:
                env.reset()
        count += 256
    return count / (time.perf_counter() - start)


def cpu_name() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, write JSON and append a RESULTS.md section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", nargs="*", default=list(SUITES))
    parser.add_argument("--sizes", nargs="*", type=int, default=[1, 64, 512, 4096])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per case")
    parser.add_argument("--json", default=str(HERE / "minigrid_env_throughput.json"))
    parser.add_argument("--results-md", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)

    device = jax.devices()[0]
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": f"{device.platform}: {device.device_kind}",
        "cpu": cpu_name(),
        "cpu_count": __import__("os").cpu_count(),
        "versions": {p: version(p) for p in ("jax", "jaxlib", "navix", "minigrid", "gymnasium")},
        "python": platform.python_version(),
        "load_average_at_start": list(__import__("os").getloadavg()),
    }
    tasks = sorted({t for s in args.suites for t in SUITES[s]})
    reference = {t: time_reference(t, args.seconds) for t in tasks}
    results = {}
    for suite_name in args.suites:
        rows = []
        for n in args.sizes:
            rows.append(time_suite(suite_name, n, args.seconds))
            print(suite_name, rows[-1], flush=True)
        ref_rate = 1.0 / np.mean([1.0 / reference[t] for t in SUITES[suite_name]])
        results[suite_name] = {"jax": rows, "reference_steps_per_second": ref_rate}
    report = {"meta": meta, "reference_per_task": reference, "suites": results}
    pathlib.Path(args.json).write_text(json.dumps(report, indent=2))

    lines = [
        "",
        f"## MiniGrid suites, random actions ({meta['date']})",
        "",
        f"Device: {meta['device']} ({meta['cpu']}, {meta['cpu_count']} cores). Versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f", Python {meta['python']}. Script: `benchmarks/minigrid_env_throughput.py`. "
        + "Load average at start: "
        + ", ".join(f"{x:.1f}" for x in meta["load_average_at_start"])
        + " (1, 5 and 15 minutes: above the core count means other jobs competed).",
        "JAX: jitted `lax.scan` of suite steps (same-step autoreset, per-task statistics), "
        "steady state after compile; env-steps/s summed over all environments; observations "
        "are used, `info['terminal_observation']` is not (XLA then skips it). Reference: "
        "`minigrid` 3.2.0 (gymnasium), one env stepped in Python, tasks in turn.",
        "",
        "| suite | envs/task | total envs | JAX steps/s | reference steps/s | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for suite_name, res in results.items():
        ref_rate = res["reference_steps_per_second"]
        for row in res["jax"]:
            lines.append(
                f"| {suite_name} | {row['envs_per_task']} | {row['total_envs']} | "
                f"{row['steps_per_second']:,.0f} | {ref_rate:,.0f} | "
                f"{row['steps_per_second'] / ref_rate:,.1f}x |"
            )
    lines += ["", "Reference, per task (steps/s): "
              + ", ".join(f"{t} {r:,.0f}" for t, r in reference.items()), ""]  # fmt: skip
    results_md = pathlib.Path(args.results_md)
    if not results_md.exists():
        results_md.write_text("# Benchmark results\n")
    with results_md.open("a") as f:
        f.write("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
