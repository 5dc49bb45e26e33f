"""Pruning: importance scores, structured and magnitude pruning, survivors across seeds.

Gates, subnetworks and surgery (the mask mechanics) live in :mod:`attnpatterns.masking`, fine-tuning in
:mod:`attnpatterns.finetuning`, labelled tasks, their metrics and dev-set evaluation in :mod:`attnpatterns.tasks`.
One concept per module:

- ``importance``: |∂L/∂gate| of every head and MLP (per example, or as the bertology or Michel et al. code)
  with the paper's normalisations;
- ``structured`` / ``magnitude``: s-pruning and m-pruning with the 0.9 x full-score stop rule;
- ``controls``: random and "bad" subnetworks of the same size;
- ``result`` / ``prune``: the step log, resumable run folders;
- ``survivors``: super-survivors, survival frequency and Fleiss' κ across seeds, published-mask layout included.
"""
