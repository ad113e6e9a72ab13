"""Behavioral event tracking: validation, privacy filter, group commit, behavior analysis."""
