"""Offline preview rendering (used by the local provider and the simulator)."""

from wanflow.preview.notice import PREVIEW_NOTICE

__all__ = ["PREVIEW_NOTICE"]
