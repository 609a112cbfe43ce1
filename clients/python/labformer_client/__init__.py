"""Python client for the Labformer REST API: `Client` and the `labformer` CLI."""

from labformer_client.client import (
    FINAL_DATASET_STATES, FINAL_JOB_STATES, FINAL_PREDICTION_STATES, Client, __version__,
)
from labformer_client.errors import (
    AuthError, InvalidInput, JobFailed, LabformerError, NotFound, ServerError, WaitTimeout,
)

__all__ = ["Client", "LabformerError", "AuthError", "NotFound", "InvalidInput", "JobFailed", "WaitTimeout",
           "ServerError", "FINAL_JOB_STATES", "FINAL_DATASET_STATES", "FINAL_PREDICTION_STATES", "__version__"]
