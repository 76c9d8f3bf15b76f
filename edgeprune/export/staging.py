"""The export's and the quantizer's staging folder: `edgeprune.files.staging.Staging` with
their error type (a locked, unwritable or non-folder ``--out`` is an ExportError)."""

from __future__ import annotations

import os

from edgeprune.export.options import ExportError
from edgeprune.files.staging import Staging as _Staging


class Staging(_Staging):
    def __init__(self, out_dir: str | os.PathLike, **options) -> None:
        super().__init__(out_dir, error=ExportError, **options)
