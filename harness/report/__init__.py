"""Study reports: tables, statistics, diagnosis, figures and the rendered HTML / Markdown."""

from harness.report.build import ReportPaths, build_report
from harness.report.index import build_index

__all__ = ["ReportPaths", "build_index", "build_report"]
