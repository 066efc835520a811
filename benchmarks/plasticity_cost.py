"""What the plasticity diagnostics and interventions cost in PPO training (MiniGrid MT3, MTPPO).

1. One chunk of the runner (5 PPO updates + the greedy evaluation = 10k steps per task) with and
   without the diagnostics (dormant fractions, srank, Fisher trace on 1026 recent observations),
   and ``diagnose`` alone.
2. One PPO update plain, with ReDo firing at that update, with PCGrad and with CAGrad.

Variants are timed in interleaved rounds (A B A B ...) so that a background load hits them alike;
each figure is the median over rounds after a warm-up call, compile time reported apart.
Writes ``benchmarks/results/plasticity_cost-<time>.json`` and prints Markdown tables.
``python benchmarks/plasticity_cost.py [--rounds N] [--seeds S] [--sections chunk,update]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import numpy as np

from jaxsparse.run.build import build_trainer
from jaxsparse.run.config import load_experiment
from jaxsparse.run.runner import seed_keys


def _compile(fn, state):
    t = time.perf_counter()
    compiled = jax.jit(jax.vmap(fn)).lower(state).compile()
    return compiled, time.perf_counter() - t


def _interleaved(variants: dict, rounds: int) -> dict[str, list[float]]:
    """``variants``: name -> (compiled fn, state). Returns per-variant wall times."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn, state in variants.values():
        jax.block_until_ready(fn(state))  # warm-up
    for _ in range(rounds):
        for name, (fn, state) in variants.items():
            t = time.perf_counter()
            jax.block_until_ready(fn(state))
            times[name].append(time.perf_counter() - t)
    return times


def _trainer(name: str, seeds: int, *overrides: str):
    cfg = load_experiment(name, [f"seeds={seeds}", *overrides])
    trainer = build_trainer(cfg)
    state = jax.jit(jax.vmap(trainer.init))(seed_keys(0, seeds))
    return cfg, trainer, state


def chunk_cost(seeds: int, rounds: int) -> list[dict]:
    rows, variants, compile_s = [], {}, {}
    for label, flag in (("chunk, no diagnostics", "false"), ("chunk + diagnostics", "true")):
        cfg, trainer, state = _trainer("mt3-dense", seeds, f"plasticity.diagnostics={flag}")
        fn, compile_s[label] = _compile(trainer.chunk, state)
        variants[label] = (fn, state)
        if flag == "true":
            diag, compile_s["diagnose alone"] = _compile(
                lambda s, t=trainer: t.algo.diagnose(s, s.key), state
            )
            variants["diagnose alone"] = (diag, state)
    steps = cfg.train.eval_every * 3 * seeds  # env steps of all tasks and seeds in one chunk
    for name, t in _interleaved(variants, rounds).items():
        med = float(np.median(t))
        row = {"what": name, "seeds": seeds, "compile_s": compile_s[name], "median_s": med}
        if name.startswith("chunk"):
            row["env_steps_per_s"] = steps / med
        rows.append(row)
    return rows


def update_cost(seeds: int, rounds: int) -> list[dict]:
    setups = {
        "update": (),
        "update + ReDo (fires every update)": ("plasticity.redo_every=2000",),
        "update + PCGrad": ("ppo.surgery=pcgrad",),
        "update + CAGrad": ("ppo.surgery=cagrad",),
    }
    variants, compile_s, steps = {}, {}, 0
    for label, overrides in setups.items():
        cfg, trainer, state = _trainer(
            "mt3-dense", seeds, "plasticity.diagnostics=false", *overrides
        )
        fn, compile_s[label] = _compile(lambda s, t=trainer: t.algo.update(s)[0], state)
        variants[label] = (fn, state)
        steps = cfg.steps_per_update * 3 * seeds
    return [
        {
            "what": name,
            "seeds": seeds,
            "compile_s": compile_s[name],
            "median_s": float(np.median(t)),
            "env_steps_per_s": steps / float(np.median(t)),
        }
        for name, t in _interleaved(variants, rounds).items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--sections", default="chunk,update", help="comma list: chunk, update")
    args = parser.parse_args()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - {"chunk", "update"})
    if unknown or not sections:
        parser.error(f"--sections: unknown {unknown}; allowed: chunk, update")
    result = {
        "time": time.strftime("%Y%m%dT%H%M%S"),
        "device": f"{jax.devices()[0].platform} ({platform.machine()}, {len(jax.devices())} "
        f"device(s))",
        "jax": jax.__version__,
        "chunk": chunk_cost(args.seeds, args.rounds) if "chunk" in sections else [],
        "update": update_cost(args.seeds, args.rounds) if "update" in sections else [],
    }
    out = Path(__file__).parent / "results" / f"plasticity_cost-{result['time']}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"device {result['device']}, jax {result['jax']}")
    print("| what | seeds | compile s | median s | env steps / s |")
    print("| --- | --- | --- | --- | --- |")
    for r in result["chunk"] + result["update"]:
        rate = f"{r['env_steps_per_s']:,.0f}" if "env_steps_per_s" in r else "-"
        print(
            f"| {r['what']} | {r['seeds']} | {r['compile_s']:.1f} | {r['median_s']:.3f} | {rate} |"
        )


if __name__ == "__main__":
    main()
