"""vtrix error codes for request-shape problems, read from each model's error table.

The two image tables number the same checks differently (t2i: 004 = "must contain one text
object"; i2i: 004 = "must be array", 005 = "one text object"), so each family has its own table.
Parameter-range codes come from the catalog's model rules, as everywhere else in the simulator.
wan26_image has no error table: its problems answer ``InvalidParameter``.
"""

from __future__ import annotations

FAMILIES = {"wan26_t2i": "001015", "wan26_i2i": "001021", "wan26_i2v": "001027"}

_T2I = {
    "missing_input": "001",
    "one_message": "002",
    "role": "003",
    "one_text": "004",  # also: an image in t2i content, or two texts
    "text_field": "005",  # content[0] must contain text field
    "negative_prompt": "007",
    "internal": "095",
}
_I2I = {
    "missing_input": "001",
    "one_message": "002",
    "role": "003",
    "content_array": "004",
    "one_text": "005",
    "negative_prompt": "009",
    # The page states 384-5000 px per side but names no code for it; 019 is the next free number.
    "image_side": "019",
    "internal": "095",
}
_I2V = {"internal": "095"}
_TABLES = {"001015": _T2I, "001021": _I2I, "001027": _I2V}


def vtrix_code(provider_model: str, check: str) -> str | None:
    """The 9-digit code ``provider_model`` uses for ``check``, or None when its table has none."""
    family = FAMILIES.get(provider_model)
    suffix = _TABLES.get(family or "", {}).get(check)
    return f"{family}{suffix}" if family and suffix else None


def internal_error_code(provider_model: str) -> str:
    """The code of a failed task: ``<family>095``, or InternalError for a model without a table."""
    return vtrix_code(provider_model, "internal") or "InternalError"
