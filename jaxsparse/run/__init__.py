"""Experiment configs, the chunked multi-seed runner, run folders, plots and aggregate scores."""
