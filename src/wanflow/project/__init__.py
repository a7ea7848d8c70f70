"""The project: where it is (from the pipeline file), its wanflow.toml and the user config, provider settings, ``init``."""
