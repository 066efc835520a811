"""Plasticity metrics for sparse multi-task RL: dormant neurons, effective rank, Fisher trace."""

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

__all__ = [
    "DormantStats",
    "dormant_fraction",
    "dormant_mask",
    "effective_rank",
    "fisher_trace",
    "neuron_scores",
    "per_sample_fisher",
    "sample_and_fisher_trace",
]
