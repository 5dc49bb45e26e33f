"""Pruning: gates on heads and MLPs, importance scores, structured and magnitude pruning, survivors across seeds.

One concept per module:

- ``gates``: head/MLP gates installed with hooks (fixed masks, or differentiable for importance);
- ``tasks`` / ``metrics``: labelled tasks (built-in, GLUE, user files) and their GLUE metrics;
- ``finetune``: the Hugging Face Trainer on a task (paper and quick presets, masks held off for re-fine-tuning);
- ``importance``: |∂L/∂gate| of every head and MLP (per example, or as the bertology or Michel et al. code)
  with the paper's normalisations;
- ``structured`` / ``magnitude``: s-pruning and m-pruning with the 0.9 x full-score stop rule;
- ``controls``: random and "bad" subnetworks of the same size;
- ``surgery``: physical removal of heads and MLPs (keeping original head ids) and loading such checkpoints;
- ``subnetwork`` / ``result`` / ``runs`` / ``prune``: masks as one object, the step log, resumable run folders;
- ``survivors``: super-survivors, survival frequency and Fleiss' κ across seeds, published-mask layout included.
"""
