"""What a failed task or a refused request means, and whether trying again can help.

Moderation, invalid parameters, bad keys and billing problems are final: retrying costs time and
perhaps money and cannot succeed. Internal errors are worth a bounded number of new attempts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Category = Literal["moderation", "invalid", "auth", "billing", "throttled", "internal", "unknown"]

_BY_CODE: dict[str, Category] = {
    "DataInspectionFailed": "moderation",
    "IPInfringementSuspect": "moderation",
    "InvalidApiKey": "auth",
    "Arrearage": "billing",
    "InsufficientBalance": "billing",
    "AccessDenied.Unpurchased": "billing",
    "Throttling.RateQuota": "throttled",
    "Throttling.AllocationQuota": "throttled",
    "InternalError": "internal",
    "InternalError.Algo": "internal",
    "InternalError.Timeout": "internal",
}

_ADVICE: dict[Category, str] = {
    "moderation": "the content was refused by moderation; change the prompt or inputs",
    "invalid": "the service rejected the request as invalid",
    "auth": "the API key was refused; check it and its region",
    "billing": "the account cannot be billed; check its balance or subscription",
    "throttled": "the service is rate limiting this key",
    "internal": "the service failed internally",
    "unknown": "the service reported a failure",
}


@dataclass(frozen=True)
class Failure:
    """A classified failure."""

    category: Category
    code: str | None
    message: str

    @property
    def retryable(self) -> bool:
        """Whether a new attempt may succeed."""
        return self.category in ("internal", "throttled")

    def describe(self) -> str:
        """One line for the user."""
        code = f" [{self.code}]" if self.code else ""
        return f"{_ADVICE[self.category]}: {self.message}{code}"


def classify(code: str | None, message: str = "") -> Failure:
    """Classify by the service's code (DashScope names, or vtrix's 9-digit codes)."""
    text = (code or "").strip()
    category: Category = _BY_CODE.get(text, "unknown")
    if category == "unknown" and text:
        if text.startswith("InvalidParameter") or text.startswith("InvalidURL"):
            category = "invalid"
        elif text.startswith("DataInspection"):
            category = "moderation"
        elif text.startswith("InternalError"):
            category = "internal"
        elif text.isdigit() and len(text) == 9:
            # vtrix: 0010xx001-089 are request validation errors, 095-099 service-side failures.
            category = "internal" if int(text[-3:]) >= 95 else "invalid"
    return Failure(category, text or None, message or "no message")
