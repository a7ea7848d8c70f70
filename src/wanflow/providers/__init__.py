"""Providers: who generates a step's outputs (``registry`` makes them from the project's settings)."""
