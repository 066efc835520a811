"""`envs.metaworld.rewards` against `metaworld.utils.reward_utils` on grids of inputs."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from metaworld.utils import reward_utils

from envs.metaworld import rewards


@pytest.mark.parametrize("sigmoid", ["long_tail", "gaussian", "reciprocal", "linear"])
@pytest.mark.parametrize(
    ("bounds", "margin"), [((0.0, 0.05), 0.3), ((0.015, 0.05), 0.02), ((0.0, 0.0), 0.0)]
)
def test_tolerance(sigmoid: str, bounds: tuple[float, float], margin: float) -> None:
    x = np.linspace(-0.5, 1.0, 301)
    ours = jax.jit(lambda x: rewards.tolerance(x, bounds, margin, sigmoid))(x)
    want = reward_utils.tolerance(x, bounds=bounds, margin=margin, sigmoid=sigmoid)
    np.testing.assert_allclose(np.asarray(ours), want, atol=1e-6)


def test_tolerance_with_traced_margin_zero() -> None:
    x = np.array([-0.1, 0.0, 0.02, 0.3])
    ours = jax.jit(lambda x, m: rewards.tolerance(x, (0.0, 0.05), m, "long_tail"))(x, 0.0)
    np.testing.assert_array_equal(np.asarray(ours), [0.0, 1.0, 1.0, 0.0])


def test_hamacher_product() -> None:
    grid = np.linspace(0, 1, 21)
    a, b = np.meshgrid(grid, grid)
    ours = np.asarray(jax.jit(rewards.hamacher_product)(a, b))
    want = np.vectorize(reward_utils.hamacher_product, otypes=[float])(a, b)
    np.testing.assert_allclose(ours, want, atol=1e-6)


def test_rect_prism_tolerance() -> None:
    """Against the reference: points inside (scaled towards the `one` corner), on a face, and
    outside the box; corners in either order per axis."""
    rng = np.random.default_rng(0)
    fn = jax.jit(rewards.rect_prism_tolerance)
    zero, one = np.array([0.1, -0.11, 0.01]), np.array([-0.1, -0.15, 0.096])
    points = [zero + (one - zero) * rng.uniform(-0.3, 1.3, 3) for _ in range(200)]
    points += [zero, one, (zero + one) / 2]
    inside = 0
    for p in points:
        theirs = reward_utils.rect_prism_tolerance(curr=p, zero=zero, one=one)
        inside += theirs != 1.0
        np.testing.assert_allclose(float(fn(p, zero, one)), theirs, rtol=1e-5, atol=1e-7)
    assert inside > 30  # the points do probe the inside (about a quarter of them)
