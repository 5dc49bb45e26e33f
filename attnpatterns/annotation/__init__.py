"""Annotating attention maps: the labelled corpus, the annotation session behind the notebook, sheet rendering,
sampling maps from extraction runs, and two-pass agreement.

Modules: :mod:`~attnpatterns.annotation.corpus` (file format, ``load_corpus``), ``selection`` (which maps each pass
still needs), ``session`` (label/skip/undo/resume logic behind the notebook, independent of ipywidgets),
``render`` (one map, or a numbered sheet of maps), ``sampling`` (choosing maps from extraction runs),
``heuristics`` (cheap pattern scores for pre-sorting only), ``sheets`` (export sheets + TSV templates, import
filled TSVs), ``agreement`` (Cohen's kappa between passes), ``labels`` (the table of label names and their
spellings) and ``guideline`` (the guideline's example pictures).
Importing this package imports none of them.
"""
