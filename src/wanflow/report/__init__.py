"""The HTML report of a run: a self-contained folder that works from ``file://`` offline."""

from wanflow.report.writer import default_report_path, write_report

__all__ = ["default_report_path", "write_report"]
