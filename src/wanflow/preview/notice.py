"""The sentence every preview file and record carries."""

PREVIEW_NOTICE = "wanflow local preview: a stand-in rendered offline, not a Wan model output"
