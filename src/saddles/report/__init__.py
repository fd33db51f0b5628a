"""What goes out: figures, the HTML pages and VTK files; never imports torch at its top.

- :mod:`~saddles.report.html`: the one page shell (:func:`page`) and the pieces of its sections
  (style, figures, tables);
- :mod:`~saddles.report.analysis`: the report of one analysis or experiment (``write_report``);
- :mod:`~saddles.report.summary`: an experiment's tables, figures and report in one call
  (``summarize``);
- :mod:`~saddles.report.notebook`: how an analysis shows itself in a notebook;
- :mod:`~saddles.report.dynamics`: a training run's metrics against the step;
- :mod:`~saddles.report.compare`: finished runs related to a size or a setting;
- :mod:`~saddles.report.figures`, :mod:`~saddles.report.plots`,
  :mod:`~saddles.report.hessian_plots`: matplotlib figures (object API, no pyplot state);
- :mod:`~saddles.report.export`: landscapes and critical points as VTK files.

``from saddles.report import write_report`` keeps working as it did when this was one module.
"""

from saddles.report.analysis import (
    HEADLINE_METRICS,
    PACKAGES,
    SECTIONS,
    SUMMARY_METRICS,
    TABLE_COLUMNS,
    relations_section,
    result_section,
    write_report,
)
from saddles.report.html import CSS, figures_and_table, page

__all__ = [
    "CSS",
    "HEADLINE_METRICS",
    "PACKAGES",
    "SECTIONS",
    "SUMMARY_METRICS",
    "TABLE_COLUMNS",
    "figures_and_table",
    "page",
    "relations_section",
    "result_section",
    "write_report",
]
