"""Pieces every service shares: written once, used everywhere."""
