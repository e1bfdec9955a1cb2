"""Compute (Nova v2.1 + Placement): the API, the scheduler and the compute agent's virt layer."""
