"""Dask as the engine: the driver, the worker side and the cluster address."""
