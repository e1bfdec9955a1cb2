"""Orchestration (Heat v1): HOT templates that build, change and delete stacks."""
