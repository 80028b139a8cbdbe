"""Reports every job writes: Markdown + self-contained HTML, shared figures and table rendering.

``Report`` builds the report; :mod:`~notsure.reports.fmt` formats numbers for sentences and
tables; :mod:`~notsure.reports.figures` draws the common figures. Importing this package selects
matplotlib's Agg backend, so jobs never need a display.
"""

from notsure.reports import fmt
from notsure.reports.document import Report
from notsure.reports.tables import render_table_html, render_table_markdown

__all__ = ["Report", "fmt", "render_table_html", "render_table_markdown"]
