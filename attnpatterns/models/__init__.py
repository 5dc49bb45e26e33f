"""Model loading and the architecture adapter (the only code that knows module paths inside an encoder).

Also physical surgery (heads and MLPs cut out by id, and such checkpoints loaded back) and what identifies a
loaded model in run fingerprints. Of the project it imports only constants and the run-folder helpers.
"""

from attnpatterns.models.adapter import EncoderAdapter, UnsupportedArchitectureError, get_adapter
from attnpatterns.models.loading import LoadedModel, ModelLoadError, load_model, resolve_model_source

__all__ = [
    "EncoderAdapter",
    "LoadedModel",
    "ModelLoadError",
    "UnsupportedArchitectureError",
    "get_adapter",
    "load_model",
    "resolve_model_source",
]
