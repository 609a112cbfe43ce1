"""Predictions for new records with a finished job's model: the body of the `predict` handler.

- The prediction's model artifact (a zip of an mlcore model directory) is fetched from storage with
  its sha256 checked, unpacked under the work folder and loaded once per worker process; later
  predictions with the same model reuse it (a small LRU), so a small batch costs a forward pass.
- Inputs are the inline JSON records, a stored JSON list (large batches), or a data file read with
  the model's column mapping, the way training read its data.
- Every record is checked by the model's own featurizer before anything is predicted; bad records
  end the prediction failed with each one named, and no result is written.
- The result goes into the row (inline) or to storage as a CSV; the prediction ends through the
  state machine in `portal.results.services`. The lease's heartbeat (`workers.leased.LeaseReporter`)
  keeps the row alive meanwhile, so a lost worker is noticed by the sweep and the prediction runs
  again elsewhere; an attempt that comes back after losing its lease stops at its next batch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from mlcore.data import DataError
from mlcore.modeldir import LoadedModel, model_load
from mlcore.predict import (
    Inputs, InvalidRecords, inputs_from_file, model_predict, predictions_json, predictions_write_csv, records_parse,
)
from mlcore.threads import threads_choose
from portal.common.lease import StaleAttempt
from portal.results import services as result_services
from portal.results.models import Artifact, Prediction
from workers.db_retry import db_retry
from workers.leased import LeaseReporter
from workers.workdirs import work_dirs_sweep

log = logging.getLogger(__name__)

MODELS_CACHED = 4  # loaded models kept per worker process
_models: OrderedDict[tuple[int, str], LoadedModel] = OrderedDict()
_models_lock = threading.Lock()


def _unzip(archive: Path, destination: Path) -> None:
    """Extract a model zip, refusing members that would land outside ``destination``."""
    root = destination.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            if not (root / member).resolve().is_relative_to(root):
                raise OSError(f"{archive.name}: member {member!r} points outside the model directory")
        zf.extractall(root)


def model_for_artifact(artifact: Artifact) -> LoadedModel:
    """The artifact's model, loaded (cached per process by artifact id and sha256)."""
    key = (artifact.pk, artifact.sha256)
    with _models_lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
        models_dir = Path(settings.LABFORMER_WORK_DIR) / "models"
        target = models_dir / f"{artifact.pk}-{artifact.sha256[:16]}"
        if not (target / "config.json").exists():
            models_dir.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix="fetch-", dir=models_dir))
            try:
                archive = result_services.artifact_fetch(artifact=artifact, destination=scratch / "model.zip")
                _unzip(archive, scratch / "model")
                try:
                    (scratch / "model").rename(target)  # atomic: another process may have won; then use theirs
                except OSError:
                    if not (target / "config.json").exists():
                        raise
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        loaded = model_load(target)
        _models[key] = loaded
        while len(_models) > MODELS_CACHED:
            _models.popitem(last=False)
        return loaded


def _inputs(prediction: Prediction, loaded: LoadedModel, work: Path) -> Inputs:
    modality = loaded.config["modality"]
    if prediction.records is not None:
        return records_parse(prediction.records, modality=modality)
    if not prediction.input_filename:  # a large JSON batch, stored as a list
        with prediction.input_file.open("rb") as fh:
            return records_parse(json.load(fh), modality=modality)
    # The local copy keeps the sender's file name: messages then say "promoters.csv line 17".
    local = work / Path(prediction.input_filename).name
    with prediction.input_file.open("rb") as src, open(local, "wb") as dst:
        shutil.copyfileobj(src, dst, length=1 << 20)
    return inputs_from_file(loaded, local)


@contextlib.contextmanager
def _torch_threads() -> Iterator[None]:
    """The threads `python -m mlcore predict` uses (mlcore.threads: one intra-op thread for prediction,
    LABFORMER_TORCH_THREADS or OMP_NUM_THREADS overriding) while predicting; the process's setting is
    restored for the training jobs it runs next."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads_choose(d_model=None).intra)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def prediction_run(prediction: Prediction) -> str:
    """Predict and end a prediction this worker has just started (``workers.handlers.predict``);
    returns the final status. ``StaleAttempt`` when the lease was lost meanwhile: the heartbeat saw
    it, and the prediction stopped at its next batch without storing anything."""
    prediction_id, attempt = prediction.pk, prediction.attempts

    def fail(**reason: object) -> None:
        try:
            db_retry(result_services.prediction_fail, what="failing the prediction", prediction_id=prediction_id,
                     attempt=attempt, **reason)
        except result_services.PredictionTransitionError as exc:
            log.warning("prediction %s attempt %s lost its claim before failing: %s", prediction_id, attempt, exc)

    work = Path(settings.LABFORMER_WORK_DIR)
    work.mkdir(parents=True, exist_ok=True)
    work_dirs_sweep(work)
    work = Path(tempfile.mkdtemp(prefix=f"prediction-{prediction_id}-a{attempt}-", dir=work))
    try:
        with LeaseReporter(lease=result_services.PREDICTION_LEASE, pk=prediction_id, attempt=attempt) as lease, \
                _torch_threads():
            loaded = model_for_artifact(prediction.model_artifact)
            lease.check()
            inputs = _inputs(prediction, loaded, work)
            predictions = model_predict(loaded, inputs, check=lease.check)
            lease.check()
            if prediction.output == Prediction.Output.INLINE:
                db_retry(result_services.prediction_succeed, what="storing the predictions", prediction_id=prediction_id,
                         attempt=attempt, n_records=len(inputs), predictions=predictions_json(loaded, inputs, predictions))
            else:
                path = work / "predictions.csv"
                predictions_write_csv(loaded, inputs, predictions, path)
                lease.check()
                db_retry(result_services.prediction_succeed, what="storing the predictions", prediction_id=prediction_id,
                         attempt=attempt, n_records=len(inputs), result_path=path)
        return Prediction.Status.SUCCEEDED
    except result_services.PredictionTransitionError as exc:
        # The sweep gave this attempt up (its heartbeat was late) and another one owns it now.
        log.warning("prediction %s attempt %s lost its claim: %s", prediction_id, attempt, exc)
        return exc.current
    except StaleAttempt:
        raise  # the handler says so and returns: nothing more is written
    except InvalidRecords as exc:
        fail(code="invalid_records", message=str(exc), problems=exc.problems)
    except DataError as exc:
        fail(code="invalid_input", message=str(exc))
    except SoftTimeLimitExceeded:
        fail(message=f"the prediction ran past its time limit of {result_services.PREDICT_TIME_LIMIT_S} s and was stopped")
    except Exception as exc:  # noqa: BLE001 - recorded on the row; the worker lives on
        log.exception("prediction %s failed", prediction_id)
        fail(message=f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Prediction.Status.FAILED
