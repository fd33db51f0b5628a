"""Orchestration: one analysis, a series of checkpoints, summaries, relations, comparisons.

- :mod:`~saddles.runs.config`: :class:`AnalysisConfig`, what an analysis computes;
- :mod:`~saddles.runs.analyze`: every stage on one model (:func:`analyze`);
- :mod:`~saddles.runs.series`: every checkpoint of a training run (:func:`analyze_checkpoints`);
- :mod:`~saddles.runs.summary`: summaries over direction seeds and the experiment report;
- :mod:`~saddles.runs.relate`: correlations with intervals, Holm, power laws, trends,
  change points;
- :mod:`~saddles.runs.compare`: finished runs related to size or a setting.

Data flows one way: runs use the stages (directions, landscape, topology, hessian) and write
through :mod:`saddles.report`; no stage imports this package.
"""
