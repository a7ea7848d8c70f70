"""The HTML report of a run: a self-contained folder that works from ``file://`` offline (``writer``)."""
