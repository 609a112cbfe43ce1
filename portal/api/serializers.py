"""API representations. Serializers validate shapes; services decide what is allowed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from operator import itemgetter

from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from mlcore import catalog
from mlcore.columns import ColumnMapping, MappingError
from portal.accounts.models import APIToken, Visibility
from portal.common.catalog_keys import catalog_key_message, modality_choices, profile_choices, task_choices
from portal.datasets.models import Dataset, UploadSession
from portal.jobs.models import Job
from portal.results.models import Artifact, Prediction
from portal.results.selectors import artifact_download
from portal.results.services import PREDICT_INLINE_MAX_BYTES, PREDICT_INLINE_MAX_RECORDS

# One choice list per concept, read from the catalog when called (settings.SPECTACULAR_SETTINGS names each
# enum once from these). The models freeze none of them: see portal.common.catalog_keys.
MODALITY_CHOICES = modality_choices
TASK_CHOICES = task_choices
PROFILE_CHOICES = profile_choices


class CatalogChoiceField(serializers.ChoiceField):
    """A catalog key (task, profile, modality). Its choices are read from the catalog each time a
    serializer is built (DRF builds its fields anew per serializer), so a task added to the catalog is
    accepted and documented without a migration; a bad key's error names it and the valid keys."""

    def __init__(self, choices: Callable[[], list[tuple[str, str]]], *, what: str, **kwargs: object) -> None:
        self.what = what
        super().__init__(choices=choices(), **kwargs)

    def to_internal_value(self, data: object) -> object:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            raise serializers.ValidationError(
                catalog_key_message(what=self.what, key=data, valid=self.choices), code="invalid_choice") from None


class LabRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()


class DatasetSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    modality = CatalogChoiceField(MODALITY_CHOICES, what="modality")  # the schema's enum; output only
    lab = LabRefSerializer(read_only=True)

    class Meta:
        model = Dataset
        fields = ["id", "name", "version", "description", "modality", "visibility", "policy", "status", "owner",
                  "lab", "original_filename", "sha256", "size_bytes", "row_count", "schema", "created_at",
                  "updated_at"]


class DatasetDetailSerializer(DatasetSerializer):
    class Meta(DatasetSerializer.Meta):
        fields = DatasetSerializer.Meta.fields + ["validation_report"]


def mapping_schema(data: dict) -> dict:
    """A validated MappingSerializer's data as a dataset schema: the ColumnMapping's to_dict() (one
    vocabulary with the upload page's form), plus `task` when given."""
    try:
        mapping = ColumnMapping.from_dict(data)
    except MappingError as exc:
        raise serializers.ValidationError({exc.field: [str(exc)]}) from None
    return {**mapping.to_dict(), **({"task": data["task"]} if data.get("task") else {})}


class MappingSerializer(serializers.Serializer):
    input_cols = serializers.ListField(child=serializers.CharField(), required=False)
    target_cols = serializers.ListField(child=serializers.CharField(), required=False)
    id_col = serializers.CharField(required=False, allow_null=True)
    group_col = serializers.CharField(required=False, allow_null=True)
    split_col = serializers.CharField(required=False, allow_null=True)
    task = CatalogChoiceField(TASK_CHOICES, what="task", required=False, allow_null=True,
                              help_text="check the targets for this task during validation")

    def validate(self, attrs: dict) -> dict:
        return mapping_schema(attrs)


class DatasetCreateSerializer(serializers.Serializer):
    file = serializers.FileField()
    name = serializers.CharField(max_length=200)
    lab = serializers.CharField(max_length=200, help_text="slug (or name) of a lab you may upload to")
    modality = CatalogChoiceField(MODALITY_CHOICES, what="modality", required=False, allow_null=True, allow_blank=True,
                                  default=None, help_text="omitted: told from the file's first records")
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.LAB)
    policy = serializers.ChoiceField(choices=Dataset.Policy.choices, default=Dataset.Policy.STRICT)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    mapping = serializers.JSONField(required=False, default=dict,
                                    help_text="column mapping: input_cols, target_cols, id_col, group_col, split_col, task")

    def validate_mapping(self, value: dict) -> dict:
        """The mapping as the dataset's schema stores it: `ColumnMapping.to_dict()` and the task."""
        inner = MappingSerializer(data=value or {})
        inner.is_valid(raise_exception=True)
        return dict(inner.validated_data)


class DatasetRemapSerializer(serializers.Serializer):
    mapping = serializers.JSONField(required=False, allow_null=True, default=None,
                                    help_text="the new column mapping (replaces the old one); omitted: kept")
    policy = serializers.ChoiceField(choices=Dataset.Policy.choices, required=False, allow_null=True, default=None)
    modality = CatalogChoiceField(MODALITY_CHOICES, what="modality", required=False, allow_null=True, default=None)

    def validate_mapping(self, value: dict | None) -> dict | None:
        return None if value is None else DatasetCreateSerializer().validate_mapping(value)


class DatasetVersionSerializer(DatasetDetailSerializer):
    """A dataset as an upload or a mapping edit left it, saying whether it is new."""

    deduplicated = serializers.SerializerMethodField(
        help_text="true: an existing version already reads these bytes this way; nothing new was made")
    reused_bytes = serializers.SerializerMethodField(
        help_text="true: the version shares a stored file instead of storing the bytes again")
    modality_guess = serializers.SerializerMethodField(
        help_text="why the modality is what it is, when the upload named none and it was told from the file's "
                  "first records; empty otherwise")

    class Meta(DatasetDetailSerializer.Meta):
        fields = DatasetDetailSerializer.Meta.fields + ["deduplicated", "reused_bytes", "modality_guess"]

    def get_deduplicated(self, dataset: Dataset) -> bool:
        return bool(getattr(dataset, "deduplicated", False))

    def get_reused_bytes(self, dataset: Dataset) -> bool:
        return bool(getattr(dataset, "reused_bytes", False))

    def get_modality_guess(self, dataset: Dataset) -> str:
        return getattr(dataset, "modality_guess", "") or ""


class UploadSessionCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    filename = serializers.CharField(max_length=255)
    lab = serializers.CharField(max_length=200, help_text="slug (or name) of a lab you may upload to")
    modality = CatalogChoiceField(MODALITY_CHOICES, what="modality", required=False, allow_null=True, allow_blank=True,
                                  default=None, help_text="omitted: told from the file's first records when the upload finishes")
    size_bytes = serializers.IntegerField(min_value=1)
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.LAB)
    policy = serializers.ChoiceField(choices=Dataset.Policy.choices, default=Dataset.Policy.STRICT)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    mapping = MappingSerializer(required=False, default=dict)


class UploadSessionSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uid", read_only=True)
    dataset = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True, help_text="set once finished")

    class Meta:
        model = UploadSession
        fields = ["id", "name", "filename", "modality", "size_bytes", "offset", "status", "dataset", "created_at"]


class UploadFinishSerializer(serializers.Serializer):
    sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}$", help_text="sha256 of the whole file, hex")


class JobSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    task_key = CatalogChoiceField(TASK_CHOICES, what="task")  # the schema's enum; output only
    profile_key = CatalogChoiceField(PROFILE_CHOICES, what="profile")
    lab = LabRefSerializer(read_only=True)
    dataset = serializers.PrimaryKeyRelatedField(read_only=True)
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    dataset_version = serializers.IntegerField(source="dataset.version", read_only=True)

    class Meta:
        model = Job
        fields = ["id", "name", "status", "task_key", "profile_key", "dataset", "dataset_name", "dataset_version",
                  "owner", "lab", "visibility", "device", "gpu_count", "priority", "progress", "epoch", "step",
                  "phase", "phase_index", "phase_count", "attempts", "max_attempts", "cancel_requested", "worker_hostname", "heartbeat_at",
                  "time_limit_s", "error_message", "created_at", "started_at", "finished_at"]


    # Rows are written by hand: a list page is 50-500 jobs and DRF's per-field machinery costs about
    # 0.2 ms a row (half of a page's time in bench/api.py). The declared fields above still define
    # the OpenAPI schema; tests compare both paths.
    _DATETIMES = frozenset({"heartbeat_at", "created_at", "started_at", "finished_at"})
    _RELATED = {
        "owner": lambda job: job.owner.username,
        "lab": lambda job: {"id": job.lab.id, "slug": job.lab.slug, "name": job.lab.name},
        "dataset": lambda job: job.dataset_id,
        "dataset_name": lambda job: job.dataset.name,
        "dataset_version": lambda job: job.dataset.version,
    }

    def to_representation(self, job: Job) -> dict:
        out = {}
        for name in self.Meta.fields:
            if name in self._RELATED:
                out[name] = self._RELATED[name](job)
            elif name in self._DATETIMES:
                value = getattr(job, name)
                out[name] = None if value is None else _DATETIME.to_representation(value)
            else:
                out[name] = getattr(job, name)
        return out


_DATETIME = serializers.DateTimeField()


# The job list reads plain rows (QuerySet.values) instead of four model instances per job (the job,
# its owner, lab and dataset): building those was ~5 ms of a page of 50 in bench/api.py. Tests compare
# these rows with JobSerializer's field by field.
_ROW_RELATED = {
    "owner": itemgetter("owner__username"),
    "lab": lambda row: {"id": row["lab_id"], "slug": row["lab__slug"], "name": row["lab__name"]},
    "dataset": itemgetter("dataset_id"),
    "dataset_name": itemgetter("dataset__name"),
    "dataset_version": itemgetter("dataset__version"),
}
# The columns to read with .values() for job_rows.
JOB_ROW_COLUMNS = tuple(f for f in JobSerializer.Meta.fields if f not in _ROW_RELATED) + (
    "owner__username", "lab_id", "lab__slug", "lab__name", "dataset_id", "dataset__name", "dataset__version")


def job_rows(rows: Iterable[dict]) -> list[dict]:
    """JobSerializer's representation of ``rows`` read with ``.values(*JOB_ROW_COLUMNS)``."""
    when = _datetime_formatter()
    readers = []
    for name in JobSerializer.Meta.fields:
        if name in JobSerializer._DATETIMES:
            readers.append((name, lambda row, column=name: when(row[column])))
        else:
            readers.append((name, _ROW_RELATED.get(name) or itemgetter(name)))
    return [{name: read(row) for name, read in readers} for row in rows]


def _datetime_formatter() -> Callable[[datetime | None], str | None]:
    """DateTimeField.to_representation for one page: the time zone looked up once, not per value.

    Aware datetimes in the ISO 8601 output format (the settings here) take the short path; anything
    else goes through DRF's field.
    """
    tz = _DATETIME.default_timezone()
    if tz is None or str(getattr(_DATETIME, "format", api_settings.DATETIME_FORMAT)).lower() != ISO_8601:
        return lambda value: None if value is None else _DATETIME.to_representation(value)

    def fmt(value: datetime | None) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            return _DATETIME.to_representation(value)
        text = value.astimezone(tz).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return fmt


class JobDetailSerializer(JobSerializer):
    class Meta(JobSerializer.Meta):
        fields = JobSerializer.Meta.fields + ["config", "options", "error_traceback"]


def _options_help() -> str:
    """The profiles' options in words, from the catalog (the OpenAPI schema's description of `options`)."""
    parts = []
    for profile in catalog.PROFILES.values():
        if profile.options:
            parts.append(f"{profile.key}: " + "; ".join(
                f"{o.name} ({o.valid_range()}, default {o.default!r})" for o in profile.options))
    return ("the chosen profile's options, checked against the catalog (mlcore.catalog.ProfileOption); an "
            "option of another profile, a wrong type or a value out of range is a 400 whose field is "
            "options.<name>. Options per profile: " + " | ".join(parts))


OPTIONS_HELP = _options_help()


class JobCreateSerializer(serializers.Serializer):
    dataset = serializers.IntegerField(help_text="id of a ready dataset you can see")
    task = CatalogChoiceField(TASK_CHOICES, what="task")
    profile = CatalogChoiceField(PROFILE_CHOICES, what="profile", default="baseline")
    preset = serializers.ChoiceField(choices=list(catalog.PRESETS), default="tiny")
    hyperparameters = serializers.DictField(required=False, default=dict,
                                            help_text="overrides, validated against the catalog")
    device = serializers.ChoiceField(choices=Job.Device.choices, default=Job.Device.CPU)
    gpu_count = serializers.IntegerField(required=False, min_value=0, max_value=8, allow_null=True, default=None)
    priority = serializers.IntegerField(min_value=-4, max_value=4, default=0)
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.LAB)
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    lab = serializers.CharField(required=False, allow_null=True, default=None, max_length=200,
                                help_text="slug (or name) of the lab the job belongs to")
    time_limit_s = serializers.IntegerField(required=False, min_value=1, allow_null=True, default=None)
    budget = serializers.FloatField(required=False, min_value=0.0, max_value=1.0, allow_null=True, default=None,
                                    help_text="pruned/slim/compact: stop before the validation primary metric "
                                              "falls more than this (absolute) below the baseline; the same "
                                              "as options.budget")
    options = serializers.DictField(required=False, default=dict, help_text=OPTIONS_HELP)
    split = serializers.ChoiceField(choices=list(catalog.SPLIT_METHODS), default="random",
                                    help_text="how records are divided into train / val / test")
    target_col = serializers.CharField(required=False, allow_null=True, allow_blank=True, default=None,
                                       max_length=200, help_text="the column to predict (several, comma-separated, "
                                                                 "for kinds that predict several); default: the "
                                                                 "dataset's mapped target, else the task's usual name")


class JobCloneSerializer(serializers.Serializer):
    task_key = CatalogChoiceField(TASK_CHOICES, what="task", required=False)
    profile_key = CatalogChoiceField(PROFILE_CHOICES, what="profile", required=False)
    preset = serializers.ChoiceField(choices=list(catalog.PRESETS), required=False)
    hyperparameters = serializers.DictField(required=False)
    device = serializers.ChoiceField(choices=Job.Device.choices, required=False)
    gpu_count = serializers.IntegerField(required=False, min_value=0, max_value=8)
    priority = serializers.IntegerField(required=False, min_value=-4, max_value=4)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    time_limit_s = serializers.IntegerField(required=False, min_value=1)
    budget = serializers.FloatField(required=False, min_value=0.0, max_value=1.0, allow_null=True)
    options = serializers.DictField(required=False, help_text="options merged over the job's (where the "
                                                              "profile has them); " + OPTIONS_HELP)
    split = serializers.ChoiceField(choices=list(catalog.SPLIT_METHODS), required=False)

    def to_internal_value(self, data: object) -> dict:
        # A misspelt change must not silently clone the job unchanged.
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({
                    key: [f"{key!r} is not something a clone can change; allowed: {', '.join(self.fields)}"]
                    for key in unknown[:20]})
        return super().to_internal_value(data)


class ArtifactSerializer(serializers.ModelSerializer):
    # A job holds several artifacts of some kinds (predictions.csv and evaluation.npz): the name tells them apart.
    name = serializers.SerializerMethodField(help_text="the stored file's name, e.g. predictions.csv")
    download_kind = serializers.SerializerMethodField(
        help_text="the name the job page and `labformer download --kind` use: model, model-optimized, predictions "
                  "(CSV), evaluation, evaluation-optimized, attention, embeddings, projection, metrics, report, log, "
                  "checkpoint")
    label = serializers.SerializerMethodField(help_text="what the job page calls it, e.g. 'Model, optimized (int8)'")

    class Meta:
        model = Artifact
        fields = ["id", "kind", "download_kind", "label", "name", "sha256", "size_bytes", "metadata", "created_at"]

    def get_name(self, artifact: Artifact) -> str:
        return artifact.file.name.rsplit("/", 1)[-1]

    def get_download_kind(self, artifact: Artifact) -> str:
        return artifact_download(artifact)[0]

    def get_label(self, artifact: Artifact) -> str:
        return artifact_download(artifact)[1]


class APITokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = APIToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]


class APITokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class APITokenCreatedSerializer(APITokenSerializer):
    token = serializers.CharField(help_text="the secret, shown this once")

    class Meta(APITokenSerializer.Meta):
        fields = APITokenSerializer.Meta.fields + ["token"]


# --- predictions -------------------------------------------------------------------------------

PREDICT_MAX_WAIT_S = 60.0
PREDICT_DEFAULT_WAIT_S = 20.0


class PredictOptionsSerializer(serializers.Serializer):
    """The query parameters of POST /jobs/{id}/predict/."""

    model = serializers.ChoiceField(choices=Prediction.Variant.choices, default=Prediction.Variant.BASELINE,
                                    help_text="baseline, or optimized: the model the job's profile produced")
    wait = serializers.FloatField(min_value=0.0, max_value=PREDICT_MAX_WAIT_S, default=PREDICT_DEFAULT_WAIT_S,
                                  help_text="seconds to wait for a small batch's answer before replying 202 "
                                            "(0: always 202)")


class PredictRecordsSerializer(serializers.Serializer):
    records = serializers.ListField(
        child=serializers.JSONField(), min_length=1, allow_empty=False,
        help_text=f'records to predict: {{"id": "a7", "input": ...}} or a bare string for dna, protein and smiles. '
                  f'input is the sequence or SMILES string, an object of feature columns (tabular), or an object of '
                  f'per-element lists (particles: pt, eta, phi, energy; lightcurve: time, flux, flux_err, band). '
                  f'Up to {PREDICT_INLINE_MAX_RECORDS} records and {PREDICT_INLINE_MAX_BYTES // 1024} KiB are answered '
                  f'inline; larger batches run as a prediction request whose CSV is downloaded.')


class PredictFileSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="a data file in the training data's format and columns (CSV, TSV, FASTA, "
                                           "SDF, Parquet; targets optional); always answered 202, result as CSV")


class PredictedRecordSerializer(serializers.Serializer):
    index = serializers.IntegerField(required=False, help_text="0-based position in the request's records")
    id = serializers.CharField()
    prediction = serializers.JSONField(help_text="class name, number, per-token label string, or target -> value")
    probabilities = serializers.DictField(child=serializers.FloatField(), allow_null=True,
                                          help_text="class -> probability (classification), else null")


class PredictionErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    records = serializers.ListField(child=serializers.DictField(),
                                    help_text='bad records named: {"index" or "line": n, "id": ..., "message": ...}')


class PredictionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="variant", read_only=True)
    # Documented as PredictionStatusEnum (settings.SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
    status = serializers.ChoiceField(choices=Prediction.Status.choices, read_only=True)
    url = serializers.SerializerMethodField()
    result_url = serializers.SerializerMethodField(help_text="the CSV, once a file-output prediction succeeded")
    error = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = ["id", "job", "model", "status", "output", "n_records", "input_filename", "url", "result_url",
                  "result_sha256", "result_size_bytes", "error", "attempts", "created_at", "started_at",
                  "finished_at"]

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    def get_url(self, prediction: Prediction) -> str:
        return self._absolute(f"/api/v1/predictions/{prediction.pk}/")

    def get_result_url(self, prediction: Prediction) -> str | None:
        if not prediction.result_file:
            return None
        return self._absolute(f"/api/v1/predictions/{prediction.pk}/download/")

    @extend_schema_field(PredictionErrorSerializer(allow_null=True))
    def get_error(self, prediction: Prediction) -> dict | None:
        if prediction.status != Prediction.Status.FAILED:
            return None
        return {"code": prediction.error_code, "message": prediction.error_message, "records": prediction.error_records}


class PredictionDetailSerializer(PredictionSerializer):
    predictions = PredictedRecordSerializer(many=True, allow_null=True, read_only=True,
                                            help_text="inline output, once succeeded; null for file output")

    class Meta(PredictionSerializer.Meta):
        fields = PredictionSerializer.Meta.fields + ["predictions"]
