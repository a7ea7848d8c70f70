"""Offline preview rendering (used by the local provider and the simulator)."""
