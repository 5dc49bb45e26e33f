"""Extraction of raw and norm-weighted attention maps into resumable, lazily readable run folders."""

from attnpatterns.extraction.maps import LayerMaps, MapCapture
from attnpatterns.extraction.run import ExtractionConfig, extract_maps
from attnpatterns.runfolder import RunExistsError
from attnpatterns.extraction.store import ExampleRecord, MapRecord, MapRun, RunError, open_run

__all__ = [
    "ExampleRecord",
    "ExtractionConfig",
    "LayerMaps",
    "MapCapture",
    "MapRecord",
    "MapRun",
    "RunError",
    "RunExistsError",
    "extract_maps",
    "open_run",
]
