"""Plasticity metrics for sparse multi-task RL (dormant neurons, effective rank, Fisher trace) and
multi-task gradient surgery (PCGrad, CAGrad) as optax transformations."""

from jaxsparse.plasticity.metrics import (
    DormantStats,
    dormant_fraction,
    dormant_mask,
    effective_rank,
    fisher_trace,
    neuron_scores,
    per_sample_fisher,
    sample_and_fisher_trace,
)
from jaxsparse.plasticity.surgery import cagrad, pcgrad

__all__ = [
    "DormantStats",
    "cagrad",
    "dormant_fraction",
    "dormant_mask",
    "effective_rank",
    "fisher_trace",
    "neuron_scores",
    "pcgrad",
    "per_sample_fisher",
    "sample_and_fisher_trace",
]
