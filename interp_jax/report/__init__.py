"""Reports: the results schemas, matplotlib figures and static HTML pages.

    schema.py           the documented schema of DIR/analysis/results.json
    html.py, figures.py one analysis's page and its figures
    robustness.py       AutoAttack's stages and the masking checks, in words
    dissection_page.py  DIR/dissection's page; tracing_page.py DIR/explain's
    reproduction.py     the reproduction's page, and summary.json with its schema
    reproduction_tables.py  that page's tables
    comparison_page.py  the comparison of models across runs
    console.py          what the commands print when they finish
"""

from interp_jax.report.html import save_analysis, write_report
from interp_jax.report.schema import RESULTS_SCHEMA, validate

__all__ = ["RESULTS_SCHEMA", "save_analysis", "validate", "write_report"]
