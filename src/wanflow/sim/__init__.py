"""A local stand-in for the vtrix and DashScope Wan APIs, for tests, demos and benchmarks."""
