"""Running a plan: every instance of a run, each instance's steps, each unit's work, the limits and the cluster."""
