"""Mask mechanics: which heads and MLPs are kept, and how a model is made to obey that.

Below extraction and pruning; of the project it imports only constants and the model adapter. One concept per module:

- ``files``: reading, validating and saving head/MLP mask files (``head_mask.npy`` / ``mlp_mask.npy``);
- ``gates``: head/MLP gates installed with hooks (fixed masks, or differentiable for importance);
- ``subnetwork``: head, MLP and weight masks as one object, applied to a model or saved to a folder;
- ``surgery``: physical removal of the heads and MLPs a mask zeroes (the cutting and loading are
  :mod:`attnpatterns.models.surgery`'s).
"""
