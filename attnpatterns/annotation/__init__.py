"""Annotating attention maps: the labelled corpus, the annotation session behind the notebook, sheet rendering,
sampling maps from extraction runs, and two-pass agreement.

Modules: :mod:`~attnpatterns.annotation.corpus` (file format, ``load_corpus``), ``session`` (label/skip/undo/resume
logic, independent of ipywidgets), ``render`` (one map, or a numbered sheet of maps), ``sampling`` (choosing maps
from extraction runs), ``sheets`` (export sheets + TSV templates, import filled TSVs), ``agreement`` (Cohen's kappa
between passes). Importing this package imports none of them.
"""
