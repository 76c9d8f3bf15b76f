"""One tiny pipeline run shared by the pipeline tests (each test copies it before changing it)."""

from __future__ import annotations

import pytest
from pipeline_helpers import write_tiny


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(config path, out folder, outcome) of one complete tiny pipeline run."""
    import torch

    from edgeprune.pipeline import load_config, run_pipeline

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("pipeline")
    config = write_tiny(folder)
    out = folder / "out"
    outcome = run_pipeline(load_config(config), out, progress=False, echo=lambda line: None)
    assert outcome.complete
    return config, out, outcome
