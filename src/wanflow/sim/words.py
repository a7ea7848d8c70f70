"""The words vtrix uses for a task's status, in every voice public material shows.

These tables are the simulator's own reading of the documents and the vendor CLI; they are kept
apart from the client's tables on purpose (two independent readings catch each other's mistakes).
Internal states are DashScope's: PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED (and SUSPENDED,
which vtrix never reports).
"""

from __future__ import annotations

import random

# documented: the t2i / image / i2i pages; the i2v page uses in_queue and done instead.
_DOCUMENTED = {"PENDING": "pending", "RUNNING": "processing", "SUCCEEDED": "completed", "FAILED": "failed",
               "CANCELED": "canceled"}
_DOCUMENTED_VIDEO = {**_DOCUMENTED, "PENDING": "in_queue", "SUCCEEDED": "done"}
# vendor: the vtrix CLI's TaskStatus comment, "in_progress | completed | failed".
_VENDOR = {"PENDING": "in_progress", "RUNNING": "in_progress", "SUCCEEDED": "completed", "FAILED": "failed",
           "CANCELED": "failed"}
# novel: running states no client has seen, so a client's handling of unknown words is exercised.
_NOVEL_RUNNING = {"PENDING": "warming_up", "RUNNING": "rendering"}
# mixed: every synonym public material shows, one picked at random per answer.
MIXED_RUNNING = ("pending", "in_queue", "processing", "running", "in_progress")
MIXED_SUCCESS = ("completed", "done", "succeeded")


def vtrix_word(style: str, status: str, video: bool, rng: random.Random) -> str:
    """The word a vtrix task body carries for the internal ``status`` in the given ``style``."""
    documented = _DOCUMENTED_VIDEO if video else _DOCUMENTED
    running = status in ("PENDING", "RUNNING", "SUSPENDED")
    if status == "SUSPENDED":
        status = "RUNNING"
    if style == "vendor":
        return _VENDOR[status]
    if style == "novel":
        return _NOVEL_RUNNING[status] if running else documented[status]
    if style == "mixed":
        if running:
            return rng.choice(MIXED_RUNNING)
        if status == "SUCCEEDED":
            return rng.choice(MIXED_SUCCESS)
        return documented[status]
    return documented[status]
