"""Save a PNG of each task's start state: `python -m envs.minigrid.save_start_pngs --out DIR`."""

from __future__ import annotations

import argparse
import pathlib

import jax
import numpy as np
from PIL import Image

from envs.minigrid.registry import TASK_NAMES, canonical_task_name, make
from envs.minigrid.render import render_observation, render_state


def save_start_pngs(
    out_dir: str | pathlib.Path, tasks: tuple[str, ...] = TASK_NAMES, seed: int = 0,
    tile_size: int = 32,
) -> list[pathlib.Path]:  # fmt: skip
    """Write `<task>.png` (full grid) and `<task>_view.png` (agent's view); return the paths."""
    if tile_size < 4:
        raise ValueError(f"tile_size must be >= 4 pixels, got {tile_size}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for task in tasks:
        env = make(canonical_task_name(task))
        obs, state = env.reset(jax.random.key(seed))
        for suffix, image in (
            ("", render_state(state, tile_size)),
            ("_view", render_observation(obs, tile_size)),
        ):
            path = out / f"{env.name}{suffix}.png"
            Image.fromarray(np.asarray(image)).save(path)
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="minigrid_start_states", help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="reset key seed")
    parser.add_argument("--tile-size", type=int, default=32, help="pixels per grid cell")
    parser.add_argument("--tasks", nargs="*", default=list(TASK_NAMES), help="task names")
    args = parser.parse_args(argv)
    for path in save_start_pngs(args.out, tuple(args.tasks), args.seed, args.tile_size):
        print(path)


if __name__ == "__main__":
    main()
