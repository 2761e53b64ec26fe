"""Deterministic Temporal workflows: temporalio and plain data only."""
