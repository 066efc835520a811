"""Schedules: the GMP cubic, periodic update steps, drop fractions, and their validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxsparse.sparsity import (
    GMP,
    SET,
    Grow,
    PeriodicSchedule,
    StaticSparse,
    drop_fraction_schedule,
    gmp_sparsity_at,
)


@settings(max_examples=50, deadline=None)
@given(
    start=st.integers(0, 1000),
    length=st.integers(1, 5000),
    final=st.floats(0.0, 0.99),
    data=st.data(),
)
def test_gmp_sparsity_follows_the_cubic_formula(start, length, final, data):
    end = start + length
    t = data.draw(st.integers(0, end + 500))
    p = min(max((t - start) / (end - start), 0.0), 1.0)
    want = final * (1 - (1 - p) ** 3)
    got = float(gmp_sparsity_at(t, final, start, end))
    assert abs(got - want) < 1e-5


def test_gmp_sparsity_works_on_traced_steps_and_levels():
    steps = jnp.arange(0, 120, 7)
    levels = jnp.array([0.5, 0.9, 0.95])
    out = jax.jit(
        jax.vmap(jax.vmap(lambda s, t: gmp_sparsity_at(t, s, 20, 100), (None, 0)), (0, None))
    )(levels, steps)
    for i, s in enumerate([0.5, 0.9, 0.95]):
        for j, t in enumerate(np.asarray(steps)):
            p = min(max((t - 20) / 80, 0), 1)
            assert abs(float(out[i, j]) - s * (1 - (1 - p) ** 3)) < 1e-5


def test_periodic_schedule_update_steps():
    sched = PeriodicSchedule(freq=500, start=1000, end=3200, include_end=True)
    steps = [t for t in range(0, 4000) if bool(sched.is_update_step(t))]
    assert steps == [1500, 2000, 2500, 3000, 3200]
    forever = PeriodicSchedule(freq=2000)
    assert [t for t in range(0, 7000) if bool(forever.is_update_step(t))] == [2000, 4000, 6000]


def test_drop_fraction_schedules():
    constant = drop_fraction_schedule(0.3)
    assert float(constant(123)) == pytest.approx(0.3)
    cosine = drop_fraction_schedule(0.3, "cosine", start=0, end=1000)
    assert float(cosine(0)) == pytest.approx(0.3)
    assert float(cosine(500)) == pytest.approx(0.15, abs=1e-6)
    assert float(cosine(1000)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: GMP(sparsity=1.0, start=0, end=10, freq=1), "sparsity"),
        (lambda: GMP(sparsity=-0.2, start=0, end=10, freq=1), "sparsity"),
        (lambda: GMP(sparsity=0.9, start=10, end=10, freq=1), "end must be greater than start"),
        (lambda: GMP(sparsity=0.9, start=10, end=5, freq=1), "end must be greater than start"),
        (lambda: GMP(sparsity=0.9, start=0, end=10, freq=0), "freq"),
        (lambda: SET(sparsity=0.9, freq=10, drop_fraction=0.0), "drop_fraction"),
        (lambda: SET(sparsity=0.9, freq=10, drop_fraction=1.2), "drop_fraction"),
        (lambda: SET(sparsity=0.9, freq=10, drop_schedule="linear"), "drop_schedule"),
        (lambda: SET(sparsity=0.9, freq=10, drop_schedule="cosine"), "end"),
        (lambda: StaticSparse(sparsity=0.5, distribution="normal"), "distribution"),
        (lambda: StaticSparse(sparsity=0.5, overrides={"critic": 1.0}), "overrides"),
        (lambda: Grow(sparsity=0.5, final_sparsity=0.8, end=10), "final_sparsity"),
    ],
)
def test_bad_hyperparameters_fail_at_construction_naming_the_field(factory, field):
    with pytest.raises(ValueError, match=field):
        factory()


def test_drop_fraction_one_is_allowed():
    SET(sparsity=0.9, freq=10, drop_fraction=1.0)
