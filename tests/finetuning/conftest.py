"""The tiny model folders of the pruning tests, shared with the fine-tuning tests."""

from tests.pruning.conftest import tiny_classifier_path, tiny_encoder_path  # noqa: F401
