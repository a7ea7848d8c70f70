"""Local media operations (``op:`` steps): free, deterministic, streamed frame by frame with PyAV."""
