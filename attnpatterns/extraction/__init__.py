"""Extraction of raw and norm-weighted attention maps into resumable, lazily readable run folders."""

from attnpatterns.extraction.maps import LayerMaps, MapCapture
from attnpatterns.extraction.run import ExtractionConfig, extract_maps
from attnpatterns.extraction.store import (
    DamagedShardError,
    ExampleRecord,
    MapRecord,
    MapRun,
    RunError,
    ShardDamage,
    VerifyResult,
    open_run,
)
from attnpatterns.runfolder import RunExistsError

__all__ = [
    "DamagedShardError",
    "ExampleRecord",
    "ExtractionConfig",
    "LayerMaps",
    "MapCapture",
    "MapRecord",
    "MapRun",
    "RunError",
    "RunExistsError",
    "ShardDamage",
    "VerifyResult",
    "extract_maps",
    "open_run",
]
