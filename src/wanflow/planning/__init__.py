"""Planning a run: the options, the one decision per unit, the plan and ``explain``."""
