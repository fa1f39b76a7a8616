"""Reports: the results schema, matplotlib figures and the static HTML page."""

from interp_jax.report.html import save_analysis, write_report
from interp_jax.report.schema import RESULTS_SCHEMA, validate

__all__ = ["RESULTS_SCHEMA", "save_analysis", "validate", "write_report"]
