"""PPO update throughput on MiniGrid MT3 (MTPPO), and the XLA:CPU convolution cliff it avoids.

1. The gradient of the MOORE CNN on 23 minibatches of 256 inside one ``lax.scan`` (how PPO runs
   its epochs): ``nn.Conv`` against ``PatchConv2x2`` (the 2x2 convolution as one matmul).
2. One full PPO update (rollout of 2000 steps per task, GAE, 1 critic epoch, 8 policy epochs) with
   the paper's settings, dense / GMP / SET, for 1 and 4 seeds vmapped: seconds per update and
   environment steps (all tasks, all seeds) per second. Compile time is reported apart.

Writes ``benchmarks/results/ppo_update-<time>.json`` and prints a Markdown table.
``python benchmarks/ppo_update.py [--quick]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse.nets.encoders import PatchConv2x2
from jaxsparse.run.build import build_trainer
from jaxsparse.run.config import load_experiment


def _timed(fn, *args, reps: int) -> list[float]:
    jax.block_until_ready(fn(*args))
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out.append(time.perf_counter() - t)
    return out


def conv_cliff(reps: int) -> dict[str, float]:
    class Enc(nn.Module):
        patch: bool

        @nn.compact
        def __call__(self, x):
            h = x.astype(jnp.float32)
            for i, ch in enumerate((16, 32, 64)):
                conv = PatchConv2x2(ch) if self.patch else nn.Conv(ch, (2, 2), padding="VALID")
                h = conv(h)
                h = jnp.tanh(h) if i == 2 else nn.relu(h)
            return h.reshape(h.shape[0], -1)

    obs = jax.random.randint(jax.random.PRNGKey(0), (23, 256, 7, 7, 3), 0, 11).astype(jnp.uint8)
    out = {}
    for patch in (False, True):
        enc = Enc(patch)
        params = enc.init(jax.random.PRNGKey(1), obs[0])
        grad = jax.grad(lambda p, o, enc=enc: enc.apply(p, o).sum())

        def body(p, o, grad=grad):
            return jax.tree.map(lambda a, b: a - 1e-3 * b, p, grad(p, o)), None

        fn = jax.jit(lambda p, o, body=body: jax.lax.scan(body, p, o)[0])
        out["PatchConv2x2 (matmul)" if patch else "nn.Conv"] = float(
            np.median(_timed(fn, params, obs, reps=reps))
        )
    return out


def ppo_update(method: str, seeds: int, reps: int) -> dict[str, float]:
    cfg = load_experiment(f"mt3-{method}")
    trainer = build_trainer(cfg)
    algo = trainer.algo
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(0), i))(jnp.arange(seeds))
    state = jax.jit(jax.vmap(algo.init))(keys)
    update = jax.jit(jax.vmap(algo.update))
    t = time.perf_counter()
    compiled = update.lower(state).compile()
    compile_s = time.perf_counter() - t
    times = []
    for _ in range(reps + 1):
        t = time.perf_counter()
        state, _ = compiled(state)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
    per_update = float(np.median(times[1:]))
    env_steps = cfg.steps_per_update * len(trainer.task_names) * seeds
    return {
        "method": method,
        "seeds": seeds,
        "compile_s": compile_s,
        "s_per_update": per_update,
        "env_steps_per_s": env_steps / per_update,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reps = 2 if args.quick else 3
    result = {
        "time": time.strftime("%Y%m%dT%H%M%S"),
        "device": f"{jax.devices()[0].platform} ({platform.machine()}, {len(jax.devices())} "
        f"device(s))",
        "jax": jax.__version__,
        "conv_grad_scan_23x256_s": conv_cliff(reps),
        "ppo": [ppo_update(m, 1, reps) for m in ("dense", "gmp", "set")]
        + [ppo_update("dense", 4, reps)],
    }
    out = Path(__file__).parent / "results" / f"ppo_update-{result['time']}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"device {result['device']}, jax {result['jax']}")
    for k, v in result["conv_grad_scan_23x256_s"].items():
        print(f"conv grads in a scan, {k}: {v * 1e3:.0f} ms")
    print("| method | seeds | compile s | s / update | env steps / s |")
    print("| --- | --- | --- | --- | --- |")
    for r in result["ppo"]:
        print(
            f"| {r['method']} | {r['seeds']} | {r['compile_s']:.1f} | {r['s_per_update']:.2f} "
            f"| {r['env_steps_per_s']:,.0f} |"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
