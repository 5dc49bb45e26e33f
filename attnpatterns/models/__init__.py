"""Model loading and the architecture adapter (the only code that knows module paths inside an encoder)."""

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
