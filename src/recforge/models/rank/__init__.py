"""Ranking models (one file each)."""
