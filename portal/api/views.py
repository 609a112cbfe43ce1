"""API v1 views: thin. Each loads objects through the access selectors and calls one service."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.db.models import QuerySet
from django.forms import ChoiceField, ModelChoiceField
from django.http import FileResponse, HttpRequest, HttpResponsePermanentRedirect, JsonResponse
from django.urls import resolve
from django.utils.choices import CallableChoiceIterator
from django.views.decorators.csrf import csrf_exempt
from django.core.exceptions import ValidationError
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FileUploadParser, FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mlcore import catalog
from portal.accounts.models import APIToken, Lab
from portal.accounts.selectors import lab_list_for_user
from portal.accounts.services import api_token_create, api_token_revoke
from portal.api import serializers as s
from portal.api.exceptions import not_found_body
from portal.api.idempotency import IDEMPOTENCY_HEADER, idempotent
from portal.common.errors import ServiceError
from portal.datasets import selectors as dataset_selectors
from portal.datasets import services as dataset_services
from portal.datasets.models import Dataset, UploadSession
from portal.datasets.selectors import dataset_get_for_user, dataset_list_for_user, dataset_preview
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.jobs.selectors import job_get_for_user, job_list_for_user, job_log_attempts, job_log_tail
from portal.results import selectors as result_selectors
from portal.results import services as result_services
from portal.results.models import Prediction


# Object ids in routes: anything else (/jobs/abc/) matches no route and gets the API's JSON 404.
ID_PATTERN = "[0-9]+"
UUID_PATTERN = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


class NewestFirst(CursorPagination):
    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"
    ordering = "-created_at"


def _lab_for(user: Any, slug: str | None) -> Lab | None:
    if not slug:
        return None
    # The pages show a lab's name and its slug; either one names it (the slug first: names may repeat).
    labs = lab_list_for_user(user=user)
    lab = labs.filter(slug=slug).first()
    if lab is None:
        named = list(labs.filter(name__iexact=slug.strip())[:2])
        if len(named) > 1:
            raise ServiceError(f"several of your labs are named {slug!r}; give the slug "
                               f"({', '.join(lab.slug for lab in named)})", field="lab")
        lab = named[0] if named else None
    if lab is None:
        known = ", ".join(f"{lab.slug} ({lab.name})" for lab in labs.order_by("slug")[:20]) or "none"
        raise ServiceError(f"you are not a member of a lab {slug!r}; your labs: {known}", field="lab")
    return lab


def _text_param(request: Request, name: str) -> str | None:
    """A free-text query parameter; NUL characters (which PostgreSQL refuses in text) are a 400, not a 500."""
    value = request.query_params.get(name)
    if value is not None and "\x00" in value:
        raise ServiceError(f"{name} contains a NUL character", field=name)
    return value


class FilterSet(filters.FilterSet):
    """django-filter's FilterSet, with its form class made once per FilterSet class, and strict enums.

    An enum parameter (status, modality, output, task, ...) with a value outside its choices, or
    given empty, is a 400 naming the parameter and the allowed values: a typo must not read as
    "no filter" or "no rows".

    django-filter makes a new Form class (a form field per filter) on every request: ~1 ms of a
    job list page in bench/api.py. Ours have the same filters for every request (no queryset that
    depends on the request), so the class can be shared; each request still validates its own
    form instance (Django copies the class's fields into every form).
    """

    def get_form_class(self):  # noqa: ANN201 - django-filter's signature
        cls = type(self)
        form_class = cls.__dict__.get("_form_class")
        if form_class is None:
            form_class = cls._form_class = super().get_form_class()
        return form_class

    def is_valid(self) -> bool:
        form = self.form
        errors = form.errors  # runs the form's own validation once
        for name, field in form.fields.items():
            if name not in self.data or not _is_enum(field):
                continue
            allowed = [str(key) for key, _ in field.choices if key != ""]
            bad = [value for value in self.data.getlist(name) if value not in allowed]
            if bad:
                errors[name] = form.error_class([
                    f"{name}: unknown value {bad[0][:80]!r}; allowed values: {', '.join(allowed)}"])
                form.cleaned_data.pop(name, None)
        for name, messages in errors.items():  # say which parameter: the form's messages do not
            errors[name] = form.error_class([m if m.startswith(name) else f"{name}: {m}" for m in messages])
        return self.is_bound and not errors


def _is_enum(field: object) -> bool:
    """A fixed choice list (not a model lookup such as ?dataset=, whose choices are rows)."""
    return isinstance(field, ChoiceField) and not isinstance(field, ModelChoiceField)


@csrf_exempt  # it only answers 404: a POST to an unknown route must get the JSON 404, not the CSRF page
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """No API route matched: the API's JSON 404 (an id in a route is a whole number or a UUID).
    A route missing only its final slash is redirected, as APPEND_SLASH does for pages."""
    if not request.path_info.endswith("/") and request.method in ("GET", "HEAD"):
        target = request.path_info + "/"
        if getattr(resolve(target).func, "__name__", "") != "not_found":
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    return JsonResponse(not_found_body(request.path), status=404)


# --- catalog ------------------------------------------------------------------------------------

class CatalogTasks(APIView):
    @extend_schema(responses=inline_serializer("Task", {
        "key": serializers.CharField(), "label": serializers.CharField(), "domain": serializers.CharField(),
        "modality": serializers.CharField(), "target_kind": serializers.CharField(),
        "primary_metric": serializers.CharField(), "greater_is_better": serializers.BooleanField(),
        "metrics": serializers.ListField(child=serializers.CharField()), "description": serializers.CharField(),
    }, many=True))
    def get(self, request: Request) -> Response:
        return Response([
            {"key": t.key, "label": t.label, "domain": t.domain, "modality": t.modality, "target_kind": t.target_kind,
             "primary_metric": t.primary_metric, "greater_is_better": t.greater_is_better, "metrics": list(t.metrics),
             "description": t.description}
            for t in catalog.TASKS.values()
        ])


class CatalogProfiles(APIView):
    @extend_schema(responses=inline_serializer("Profile", {
        "key": serializers.CharField(), "label": serializers.CharField(), "description": serializers.CharField(),
        "options": serializers.ListField(child=serializers.DictField(), help_text=(
            "the profile's options (mlcore.catalog.ProfileOption): name, type (int, float, bool, choice), default "
            "(null: the profile decides), min, max, choices, unit, help; set them as job create's `options`")),
    }, many=True))
    def get(self, request: Request) -> Response:
        return Response([{"key": p.key, "label": p.label, "description": p.description,
                          "options": [{"name": o.name, "type": o.type, "default": o.default, "min": o.min, "max": o.max,
                                       "choices": list(o.choices), "unit": o.unit, "help": o.help}
                                      for o in p.options]}
                         for p in catalog.PROFILES.values()])


class CatalogPresets(APIView):
    @extend_schema(responses=inline_serializer("Preset", {
        "key": serializers.CharField(), "shape": serializers.DictField(), "training": serializers.DictField(),
    }, many=True))
    def get(self, request: Request) -> Response:
        return Response([{"key": k, "shape": v, "training": catalog.PRESET_TRAINING.get(k, {})}
                         for k, v in catalog.PRESETS.items()])


# --- datasets -----------------------------------------------------------------------------------

class DatasetFilter(FilterSet):
    # Catalog keys: choices read from the catalog on each use (lazily, and documented as an enum).
    modality = filters.ChoiceFilter(choices=CallableChoiceIterator(s.MODALITY_CHOICES))
    lab = filters.CharFilter(field_name="lab__slug")
    name = filters.CharFilter(field_name="name")
    search = filters.CharFilter(method="search_filter", label="search in name and description")

    class Meta:
        model = Dataset
        fields = ["modality", "visibility", "status", "lab", "name"]

    def search_filter(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        from django.db.models import Q

        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


class DatasetOrdering(NewestFirst):
    ordering_fields = ("created_at", "name", "row_count", "size_bytes")

    def get_ordering(self, request, queryset, view):  # noqa: ANN001, ANN201
        requested = request.query_params.get("ordering")
        if requested and requested.lstrip("-") in self.ordering_fields:
            return (requested, "-pk") if requested.lstrip("-") != "created_at" else (requested,)
        return (self.ordering,)


@extend_schema(tags=["datasets"])
class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                     viewsets.GenericViewSet):
    lookup_value_regex = ID_PATTERN
    filterset_class = DatasetFilter
    filter_backends = [filters.DjangoFilterBackend]
    pagination_class = DatasetOrdering
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self) -> QuerySet[Dataset]:
        datasets = dataset_list_for_user(user=self.request.user)
        if self.action == "list":
            datasets = datasets.defer("validation_report")  # the report can be large; the list does not show it
        return datasets

    def get_serializer_class(self):  # noqa: ANN201
        return s.DatasetDetailSerializer if self.action == "retrieve" else s.DatasetSerializer

    def get_object(self) -> Dataset:
        return dataset_get_for_user(user=self.request.user, dataset_id=int(self.kwargs["pk"]))

    @extend_schema(request={"multipart/form-data": s.DatasetCreateSerializer}, parameters=[IDEMPOTENCY_HEADER],
                   responses={201: s.DatasetVersionSerializer, 200: s.DatasetVersionSerializer})
    @idempotent
    def create(self, request: Request) -> Response:
        form = s.DatasetCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        upload = data["file"]
        dataset = dataset_services.dataset_create(
            owner=request.user, lab=_lab_for(request.user, data["lab"]), name=data["name"], modality=data["modality"],
            file=upload, filename=upload.name, visibility=data["visibility"], policy=data["policy"],
            description=data["description"], schema=data["mapping"],
        )
        return Response(s.DatasetVersionSerializer(dataset).data,
                        status=status.HTTP_200_OK if dataset.deduplicated else status.HTTP_201_CREATED)

    @extend_schema(request=s.DatasetRemapSerializer,
                   responses={201: s.DatasetVersionSerializer, 200: s.DatasetVersionSerializer})
    @action(detail=True, methods=["post"])
    def remap(self, request: Request, pk: str | None = None) -> Response:
        """A new version reading the same stored bytes with another mapping, policy or modality (validated
        again); 200 with ``deduplicated`` when a version of these bytes already reads them that way."""
        form = s.DatasetRemapSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        dataset = dataset_services.dataset_remap(user=request.user, dataset=self.get_object(), schema=d["mapping"],
                                                 policy=d["policy"], modality=d["modality"])
        return Response(s.DatasetVersionSerializer(dataset).data,
                        status=status.HTTP_200_OK if dataset.deduplicated else status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        dataset_services.dataset_delete(user=request.user, dataset=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[OpenApiParameter("rows", int, description="how many rows (max 200)")],
                   responses=inline_serializer("Preview", {"columns": serializers.ListField(child=serializers.CharField()),
                                                           "rows": serializers.ListField(child=serializers.ListField()),
                                                           "source": serializers.CharField()}))
    @action(detail=True, methods=["get"])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        dataset = self.get_object()
        rows = request.query_params.get("rows", "20")
        if not rows.strip().lstrip("-").isdigit():
            raise ServiceError("rows must be a whole number", field="rows")
        n = max(1, min(200, int(rows)))
        return Response(dataset_preview(dataset=dataset, rows=n))

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str | None = None) -> FileResponse:
        dataset = self.get_object()
        # Always octet-stream, as documented: the bytes are the file as uploaded, whatever its name says.
        return FileResponse(dataset.original_file.open("rb"), as_attachment=True,
                            filename=dataset.original_filename or "dataset", content_type="application/octet-stream")

    # A plain list (the 200 newest), neither paginated nor filtered like the dataset list.
    @extend_schema(responses=s.JobSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def jobs(self, request: Request, pk: str | None = None) -> Response:
        dataset = self.get_object()
        jobs = job_list_for_user(user=request.user).filter(dataset=dataset)[:200]
        return Response(s.JobSerializer(jobs, many=True).data)


class UploadFilter(FilterSet):
    class Meta:
        model = UploadSession
        fields = ["status"]


@extend_schema(tags=["datasets"], parameters=[OpenApiParameter("uid", str, OpenApiParameter.PATH,
                                                                 description="the upload session's id (a UUID)")])
class UploadSessionViewSet(viewsets.GenericViewSet):
    """Chunked, resumable upload: POST a session, PUT chunks at the server's offset, POST finish with sha256."""

    serializer_class = s.UploadSessionSerializer
    lookup_field = "uid"
    lookup_value_regex = UUID_PATTERN
    parser_classes = [JSONParser]
    pagination_class = NewestFirst
    filterset_class = UploadFilter
    filter_backends = [filters.DjangoFilterBackend]

    def get_queryset(self) -> QuerySet[UploadSession]:
        if getattr(self, "swagger_fake_view", False):
            return UploadSession.objects.none()
        return dataset_selectors.upload_session_list_for_user(user=self.request.user)

    @extend_schema(description="Your chunked uploads, newest first: by default the unfinished ones (status "
                               "`open`), each with the bytes received so far (`offset`), so a client that "
                               "died can resume one with PUT .../chunk/?offset=<offset>.")
    def list(self, request: Request) -> Response:
        uploads = self.filter_queryset(self.get_queryset())
        if "status" not in request.query_params:
            uploads = uploads.filter(status=UploadSession.Status.OPEN)
        page = self.paginate_queryset(uploads)
        return self.get_paginated_response(s.UploadSessionSerializer(page, many=True).data)

    @extend_schema(request=s.UploadSessionCreateSerializer, parameters=[IDEMPOTENCY_HEADER],
                   responses={201: s.UploadSessionSerializer})
    @idempotent
    def create(self, request: Request) -> Response:
        form = s.UploadSessionCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        session = dataset_services.upload_session_create(
            owner=request.user, lab=_lab_for(request.user, d["lab"]), name=d["name"], filename=d["filename"],
            modality=d["modality"], size_bytes=d["size_bytes"], visibility=d["visibility"], policy=d["policy"],
            description=d["description"], schema=dict(d.get("mapping") or {}),
        )
        return Response(s.UploadSessionSerializer(session).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, uid: str | None = None) -> Response:
        return Response(s.UploadSessionSerializer(self.get_object()).data)

    @extend_schema(
        request={"application/octet-stream": bytes},
        parameters=[OpenApiParameter("offset", int, required=True, description="where this chunk starts")],
        responses={200: s.UploadSessionSerializer},
    )
    @action(detail=True, methods=["put"], parser_classes=[FileUploadParser])
    def chunk(self, request: Request, uid: str | None = None) -> Response:
        session = self.get_object()
        try:
            offset = int(request.query_params["offset"])
        except (KeyError, ValueError):
            raise ServiceError("give the chunk's start as ?offset=N", field="offset") from None
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        # Read the raw body as a stream: a chunk is never held whole in memory.
        session = dataset_services.upload_chunk_append(session=session, offset=offset, stream=request._request,
                                                       length=length)
        return Response(s.UploadSessionSerializer(session).data)

    @extend_schema(request=s.UploadFinishSerializer, responses={201: s.DatasetVersionSerializer})
    @action(detail=True, methods=["post"])
    def finish(self, request: Request, uid: str | None = None) -> Response:
        form = s.UploadFinishSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        dataset = dataset_services.upload_session_finish(session=self.get_object(), sha256=form.validated_data["sha256"])
        return Response(s.DatasetVersionSerializer(dataset).data, status=status.HTTP_201_CREATED)


# --- jobs ----------------------------------------------------------------------------------------

class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, converted to UTC here: PostgreSQL refuses offsets beyond +-15:59 that
    Python accepts (up to +-23:59), and a time near year 1 or 9999 can leave the calendar in UTC.
    Both are a 400 saying so, not a database error."""

    def to_python(self, value: object) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(dt_timezone.utc)
        except OverflowError:
            raise ValidationError(f"{value} is outside the supported range once converted to UTC",
                                  code="invalid") from None


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class JobFilter(FilterSet):
    lab = filters.CharFilter(field_name="lab__slug")
    task = filters.ChoiceFilter(field_name="task_key", choices=CallableChoiceIterator(s.TASK_CHOICES))
    profile = filters.ChoiceFilter(field_name="profile_key", choices=CallableChoiceIterator(s.PROFILE_CHOICES))
    owner = filters.CharFilter(field_name="owner__username")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Job
        fields = ["status", "dataset", "device", "visibility", "lab", "task", "profile", "owner"]


class JobOrdering(DatasetOrdering):
    ordering_fields = ("created_at", "started_at", "finished_at", "priority", "progress")


@extend_schema(tags=["jobs"])
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_value_regex = ID_PATTERN
    filterset_class = JobFilter
    filter_backends = [filters.DjangoFilterBackend]
    pagination_class = JobOrdering

    def get_queryset(self) -> QuerySet[Job]:
        return job_list_for_user(user=self.request.user)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Plain rows of only the columns the list shows (no config/traceback, no dataset report or
        # owner hash), not model instances: see serializers.job_rows and bench/api.py.
        rows = self.filter_queryset(self.get_queryset()).values(*s.JOB_ROW_COLUMNS)
        page = self.paginate_queryset(rows)
        if page is None:
            return Response(s.job_rows(rows))
        return self.get_paginated_response(s.job_rows(page))

    def get_serializer_class(self):  # noqa: ANN201
        return s.JobDetailSerializer if self.action == "retrieve" else s.JobSerializer

    def get_object(self) -> Job:
        return job_get_for_user(user=self.request.user, job_id=int(self.kwargs["pk"]))

    @extend_schema(request=s.JobCreateSerializer, parameters=[IDEMPOTENCY_HEADER], responses={201: s.JobDetailSerializer})
    @idempotent
    def create(self, request: Request) -> Response:
        form = s.JobCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        dataset = dataset_get_for_user(user=request.user, dataset_id=d["dataset"])
        job = job_services.job_submit(
            user=request.user, dataset=dataset, task_key=d["task"], profile_key=d["profile"], preset=d["preset"],
            hyperparameters=d["hyperparameters"], device=d["device"], gpu_count=d["gpu_count"],
            priority=d["priority"], visibility=d["visibility"], name=d["name"], lab=_lab_for(request.user, d["lab"]),
            time_limit_s=d["time_limit_s"], budget=d["budget"], split=d["split"], target_col=d["target_col"] or None,
            options=d["options"],
        )
        return Response(s.JobDetailSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.JobDetailSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        job = job_services.job_cancel(job_id=self.get_object().pk, user=request.user)
        return Response(s.JobDetailSerializer(job).data)

    @extend_schema(request=None, parameters=[IDEMPOTENCY_HEADER], responses={201: s.JobDetailSerializer})
    @action(detail=True, methods=["post"])
    @idempotent
    def retry(self, request: Request, pk: str | None = None) -> Response:
        job = job_services.job_clone(user=request.user, job=self.get_object())
        return Response(s.JobDetailSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.JobCloneSerializer, parameters=[IDEMPOTENCY_HEADER], responses={201: s.JobDetailSerializer})
    @action(detail=True, methods=["post"], parser_classes=[JSONParser])  # a JSON object of changes, nothing else
    @idempotent
    def clone(self, request: Request, pk: str | None = None) -> Response:
        form = s.JobCloneSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        job = job_services.job_clone(user=request.user, job=self.get_object(), changes=dict(form.validated_data))
        return Response(s.JobDetailSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=inline_serializer("JobMetrics", {
        "baseline": serializers.DictField(), "optimized": serializers.DictField(),
        "environment": serializers.DictField(), "series": serializers.ListField(child=serializers.DictField()),
        "primary": inline_serializer("PrimaryMetric", {
            "key": serializers.CharField(help_text="the metric the job is judged by (its resolved target kind's)"),
            "value": serializers.FloatField(allow_null=True, help_text="the baseline model's test value"),
            "optimized": serializers.FloatField(allow_null=True, help_text="the optimized model's test value"),
            "greater_is_better": serializers.BooleanField(),
            "target_kind": serializers.CharField(
                help_text="the kind the job ran as: a binary task whose data has 3 classes runs as multiclass"),
        })}))
    @action(detail=True, methods=["get"])
    def metrics(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        result = getattr(job, "result", None) if hasattr(job, "result") else None
        return Response({
            "baseline": result.baseline_metrics if result else {},
            "optimized": result.optimized_metrics if result else {},
            "environment": result.environment if result else {},
            "series": result_selectors.metric_names_for_job(job=job),
            "primary": result_selectors.primary_metric(job).as_dict(),
        })

    @extend_schema(parameters=[OpenApiParameter("name", str, required=True), OpenApiParameter("split", str),
                               OpenApiParameter("max_points", int, description="thin each split to at most this many")],
                   responses=inline_serializer("MetricSeries", {"name": serializers.CharField(),
                                                                "splits": serializers.DictField()}))
    @action(detail=True, methods=["get"])
    def series(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        name = _text_param(request, "name")
        if not name:
            raise ServiceError("give the metric as ?name=...", field="name")
        max_points = request.query_params.get("max_points")
        splits = result_selectors.metric_series_for_job(
            job=job, name=name, split=_text_param(request, "split"),
            max_points=int(max_points) if max_points and max_points.isdigit() else None,
        )
        return Response({"name": name, "splits": splits})

    @extend_schema(responses=inline_serializer("CompressionReport", {"profile": serializers.CharField(),
                                                                     "report": serializers.DictField()}))
    @action(detail=True, methods=["get"])
    def report(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        result = getattr(job, "result", None) if hasattr(job, "result") else None
        return Response({"profile": job.profile_key, "report": result.compression_report if result else {}})

    @extend_schema(
        parameters=[OpenApiParameter("attempt", int, description="the attempt (default: the latest that logged)"),
                    OpenApiParameter("tail", int, description="at most this many characters from the end")],
        responses=inline_serializer("JobLog", {"attempt": serializers.IntegerField(allow_null=True),
                                               "attempts": serializers.ListField(child=serializers.IntegerField()),
                                               "chars_total": serializers.IntegerField(),
                                               "text": serializers.CharField()}),
        description="An attempt's log, streamed by the worker while it runs (the whole file of each ended "
                    "attempt is also a `log` artifact). `chars_total` counts everything logged: poll until it grows.")
    @action(detail=True, methods=["get"])
    def log(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        attempt, tail = request.query_params.get("attempt", ""), request.query_params.get("tail", "65536")
        if not attempt.isdigit() and attempt or not tail.isdigit():
            raise serializers.ValidationError({"attempt" if attempt and not attempt.isdigit() else "tail":
                                               "expected a whole number"})
        row = job_log_tail(job=job, attempt=int(attempt) if attempt else None, max_chars=int(tail))
        return Response({"attempt": row.attempt if row else None, "attempts": job_log_attempts(job=job),
                         "chars_total": row.chars_total if row else 0, "text": row.text if row else ""})

    @extend_schema(responses=s.ArtifactSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def artifacts(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        return Response(s.ArtifactSerializer(result_selectors.artifact_list_for_job(job=job), many=True).data)

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"], url_path=r"artifacts/(?P<artifact_id>\d+)/download")
    def artifact_download(self, request: Request, pk: str | None = None, artifact_id: str | None = None) -> FileResponse:
        job = self.get_object()
        artifact = result_selectors.artifact_get_for_job(job=job, artifact_id=int(artifact_id))
        filename = artifact.file.name.rsplit("/", 1)[-1]
        return FileResponse(artifact.file.open("rb"), as_attachment=True, filename=f"job{job.pk}-{filename}",
                            content_type="application/octet-stream")


    @extend_schema(
        tags=["predictions"],
        request={"application/json": s.PredictRecordsSerializer, "multipart/form-data": s.PredictFileSerializer},
        parameters=[s.PredictOptionsSerializer, IDEMPOTENCY_HEADER],
        responses={200: s.PredictionDetailSerializer, 202: s.PredictionDetailSerializer},
        description="Predict new records with the job's model (the job must have succeeded). A small JSON batch "
                    f"(up to {result_services.PREDICT_INLINE_MAX_RECORDS} records and "
                    f"{result_services.PREDICT_INLINE_MAX_BYTES // 1024} KiB) is answered 200 with one prediction per "
                    "record when a worker answers within `wait` seconds, else 202 with the prediction's `url` to "
                    "poll. A larger batch or a data file (multipart `file`) is answered 202 at once; its result is a "
                    "CSV at `result_url`. Records with bad values are a 400 `invalid_records` naming each one.",
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser, MultiPartParser])
    @idempotent
    def predict(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        options = s.PredictOptionsSerializer(data=request.query_params)
        options.is_valid(raise_exception=True)
        is_file = (request.content_type or "").startswith("multipart/")
        form = (s.PredictFileSerializer if is_file else s.PredictRecordsSerializer)(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data.get("file")
        prediction = result_services.prediction_create(
            user=request.user, job=job, variant=options.validated_data["model"],
            records=form.validated_data.get("records"), file=upload, filename=upload.name if upload else None,
            idempotency_key=request.headers.get("Idempotency-Key") or None,
        )
        if prediction.output == Prediction.Output.INLINE and options.validated_data["wait"] > 0:
            prediction = result_selectors.prediction_wait(prediction_id=prediction.pk,
                                                          timeout=options.validated_data["wait"])
        return _prediction_answer(request, prediction)


def _prediction_answer(request: Request, prediction: Prediction) -> Response:
    """200 with the predictions, 202 with the link to poll, or the prediction's error."""
    if prediction.status == Prediction.Status.FAILED:
        if prediction.error_code == "invalid_records":
            raise result_services.invalid_records_error(message=prediction.error_message,
                                                        problems=prediction.error_records)
        raise ServiceError(prediction.error_message or "the prediction failed", code="prediction_failed")
    data = s.PredictionDetailSerializer(prediction, context={"request": request}).data
    if prediction.status == Prediction.Status.SUCCEEDED and prediction.output == Prediction.Output.INLINE:
        return Response(data, status=status.HTTP_200_OK)
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


class PredictionFilter(FilterSet):
    class Meta:
        model = Prediction
        fields = ["job", "status", "output"]


@extend_schema(tags=["predictions"])
class PredictionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your predictions (POST /jobs/{id}/predict/ creates them): status, inline results, the CSV of large ones."""

    filterset_class = PredictionFilter
    lookup_value_regex = ID_PATTERN
    filter_backends = [filters.DjangoFilterBackend]
    pagination_class = NewestFirst

    def get_queryset(self) -> QuerySet[Prediction]:
        predictions = result_selectors.prediction_list_for_user(user=self.request.user)
        if self.action == "list":
            predictions = predictions.defer("records", "predictions")  # a page lists, it does not carry results
        return predictions

    def get_serializer_class(self):  # noqa: ANN201
        return s.PredictionDetailSerializer if self.action == "retrieve" else s.PredictionSerializer

    def get_object(self) -> Prediction:
        return result_selectors.prediction_get_for_user(user=self.request.user, prediction_id=int(self.kwargs["pk"]))

    @extend_schema(responses={(200, "text/csv"): bytes})
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str | None = None) -> FileResponse:
        prediction = self.get_object()
        if prediction.status != Prediction.Status.SUCCEEDED:
            raise ServiceError(f"prediction {prediction.pk} is {prediction.status}; its CSV exists once it succeeded",
                               code="not_ready")
        if not prediction.result_file:
            raise ServiceError(f"prediction {prediction.pk} was answered inline: its predictions are in "
                               f"GET /api/v1/predictions/{prediction.pk}/", code="no_file")
        return FileResponse(prediction.result_file.open("rb"), as_attachment=True, content_type="text/csv",
                            filename=f"prediction{prediction.pk}-job{prediction.job_id}.csv")


# --- tokens ----------------------------------------------------------------------------------

@extend_schema(tags=["tokens"])
class APITokenViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = s.APITokenSerializer
    pagination_class = None
    lookup_value_regex = ID_PATTERN

    def get_queryset(self) -> QuerySet[APIToken]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return APIToken.objects.none()
        return APIToken.objects.filter(user=self.request.user)

    @extend_schema(request=s.APITokenCreateSerializer, responses={201: s.APITokenCreatedSerializer})
    def create(self, request: Request) -> Response:
        form = s.APITokenCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        token, secret = api_token_create(user=request.user, **form.validated_data)
        data = s.APITokenSerializer(token).data
        data["token"] = secret
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.APITokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        return Response(s.APITokenSerializer(api_token_revoke(user=request.user, token_id=int(pk))).data)
