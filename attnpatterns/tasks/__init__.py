"""Labelled tasks and how a classifier is scored on them: what fine-tuning and pruning share.

Below :mod:`attnpatterns.finetuning` and :mod:`attnpatterns.pruning`; above models and masking (a score may be of
a masked model). One concept per module:

- ``task``: the one labelled-task type over the built-in tasks, GLUE and the user's own files;
- ``metrics``: the GLUE metrics and which of them a task can use;
- ``batches``: tokenised examples and padded batches;
- ``evaluation``: dev-set scores of a (possibly masked) classifier.
"""
