"""``edgeprune pipeline``: dense model -> pruned -> exported -> quantized -> evaluated ->
profiled -> checked -> report, each stage kept and skipped when its inputs are unchanged.

    from edgeprune.pipeline import load_config, run_pipeline
    outcome = run_pipeline(load_config("examples/demo.toml"), "runs/demo")
"""

from edgeprune.pipeline.config import PipelineConfig, PipelineConfigError, load_config
from edgeprune.pipeline.runner import STAGES, PipelineError, RunOutcome, run_pipeline

__all__ = ["STAGES", "PipelineConfig", "PipelineConfigError", "PipelineError", "RunOutcome", "load_config",
           "run_pipeline"]
