"""Forms of the job pages: the launch form and the catalog's filters.

Choices come from ``mlcore.catalog`` (tasks, profiles, presets, hyperparameters) and from selectors
(the datasets, labs and jobs the user may see), so a new task or profile appears here untouched.
The launch form checks what it can per field (so an error stands next to the field that caused it);
``job_submit`` has the last word and its errors are mapped back onto the fields by the view.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, F, FloatField, Q, QuerySet, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

from mlcore import catalog
from portal.accounts.models import Lab, Membership, Visibility
from portal.accounts.selectors import lab_list_for_user
from portal.common.catalog_keys import domain_choices, profile_choices, task_choices
from portal.datasets.models import Dataset
from portal.datasets.selectors import dataset_list_for_user
from portal.jobs.models import Job
from portal.jobs.selectors import CatalogFacets

HP_PREFIX = "hp_"
# The hyperparameters that say how the data is split; the launch page shows them in their own panel.
SPLIT_HYPERPARAMETERS = ("val_frac", "test_frac", "seed")


def hp_field_name(name: str) -> str:
    return f"{HP_PREFIX}{name}"


OPTION_PREFIX = "opt_"


def option_field_name(profile: str, name: str) -> str:
    """The launch form's field for option `name` of `profile` (each profile has its own fields; the
    shared accuracy budget is the form's `budget` field)."""
    if name == "budget":
        return "budget"
    return f"{OPTION_PREFIX}{profile.replace('-', '_')}__{name}"


def hp_initial(value: Any) -> str:
    """A hyperparameter value as the launch form shows it (booleans as the select's true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _OptionDataSelect(forms.Select):
    """A select whose options carry ``data-*`` attributes (a dataset's modality and summary, a task's
    modality), so the page narrows the task list to the chosen dataset without a round trip."""

    def __init__(self, *args: Any, option_data: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.option_data = option_data

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):  # noqa: ANN001, ANN201
        option = super().create_option(name, value, label, selected, index, subindex=subindex, attrs=attrs)
        for key, text in self.option_data(value).items():
            option["attrs"][f"data-{key}"] = text
        return option


def dataset_summary(dataset: Dataset) -> str:
    """One line about a dataset for the launch form: modality, size, lab, and its split column if any."""
    modality = catalog.MODALITIES.get(dataset.modality)
    parts = [modality.label if modality else dataset.modality]
    if dataset.row_count is not None:
        parts.append(f"{dataset.row_count} rows")
    parts.append(f"lab {dataset.lab.name}")
    split_col = (dataset.schema or {}).get("split_col")
    if split_col:
        parts.append(f"split column '{split_col}' decides train / validation / test")
    return " · ".join(parts)


def _dataset_option_data(value: Any) -> dict[str, str]:
    dataset = getattr(value, "instance", None)  # ModelChoiceIteratorValue
    if dataset is None:
        return {}
    return {"modality": dataset.modality, "summary": dataset_summary(dataset)}


def _task_option_data(value: Any) -> dict[str, str]:
    task = catalog.TASKS.get(str(value))
    return {"modality": task.modality} if task else {}


class DatasetChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Dataset) -> str:
        modality = catalog.MODALITIES.get(obj.modality)
        rows = f", {obj.row_count} rows" if obj.row_count is not None else ""
        return f"{obj.name} v{obj.version} ({modality.label if modality else obj.modality}{rows}) · {obj.lab.name}"


def writable_labs_for_user(*, user: AbstractBaseUser) -> QuerySet[Lab]:
    """The user's labs in which they may launch jobs (owner or member, not viewer)."""
    return lab_list_for_user(user=user).filter(
        memberships__user=user, memberships__role__in=[Membership.Role.OWNER, Membership.Role.MEMBER]
    ).distinct().order_by("name", "pk")


class JobLaunchForm(forms.Form):
    dataset = DatasetChoiceField(
        queryset=Dataset.objects.none(), empty_label="Choose a dataset…",
        widget=_OptionDataSelect(option_data=_dataset_option_data, attrs={"class": "form-select"}),
        help_text="Only validated (ready) datasets you can see are listed.",
    )
    task = forms.ChoiceField(
        choices=lambda: [("", "Choose a task…"), *task_choices()],  # read from the catalog per form
        widget=_OptionDataSelect(option_data=_task_option_data, attrs={"class": "form-select"}),
    )
    target_col = forms.CharField(
        required=False, max_length=200, label="Target column",
        widget=forms.TextInput(attrs={"class": "form-control", "placeholder": "the dataset's target"}),
        help_text="The column to predict (several, comma-separated, for multi-target regression and "
                  "multi-label tasks). Empty: the dataset's mapped target, else the task's usual name "
                  "(label / target / labels).",
    )
    profile = forms.ChoiceField(
        choices=profile_choices, initial="baseline",
        widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
    )
    preset = forms.ChoiceField(choices=[(k, k) for k in catalog.PRESETS], initial="tiny",
                               widget=forms.RadioSelect(attrs={"class": "form-check-input"}))
    split = forms.ChoiceField(
        label="Split method", choices=[(k, k) for k in catalog.SPLIT_METHODS], initial="random", required=False,
        widget=forms.Select(attrs={"class": "form-select"}),
        help_text=" ".join(f"{k}: {v}" for k, v in catalog.SPLIT_METHODS.items()),
    )
    device = forms.ChoiceField(choices=Job.Device.choices, initial=Job.Device.CPU,
                               widget=forms.RadioSelect(attrs={"class": "form-check-input"}))
    gpu_count = forms.IntegerField(
        required=False, min_value=1, max_value=8, label="GPUs",
        widget=forms.NumberInput(attrs={"class": "form-control", "placeholder": "1"}),
        help_text="GPU jobs only: how many GPUs (1 to 8).",
    )
    lab = forms.ModelChoiceField(
        queryset=Lab.objects.none(), empty_label=None, widget=forms.Select(attrs={"class": "form-select"}),
        help_text="The lab the job belongs to (one where you may launch jobs).",
    )
    name = forms.CharField(
        required=False, max_length=200, widget=forms.TextInput(attrs={"class": "form-control", "placeholder": "optional"}),
    )
    visibility = forms.ChoiceField(
        choices=Visibility.choices, initial=Visibility.LAB, widget=forms.Select(attrs={"class": "form-select"}),
    )
    budget = forms.FloatField(
        required=False, min_value=0.0, max_value=1.0, label="Accuracy budget",
        widget=forms.NumberInput(attrs={"class": "form-control", "step": "any", "placeholder": "none"}),
        help_text="Pruned, slim and compact stop before the validation metric falls more than this "
                  "(absolute, 0 to 1) below the baseline. Empty: the profile's default target.",
    )

    def __init__(self, data: Any = None, *, user: AbstractBaseUser, extra_dataset_id: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        datasets = Q(pk__in=dataset_list_for_user(user=user).filter(status=Dataset.Status.READY).values("pk"))
        if extra_dataset_id is not None:  # the dataset of the job being cloned: the exact version it used
            datasets |= Q(pk=extra_dataset_id)
        self.fields["dataset"].queryset = (
            Dataset.objects.filter(datasets).select_related("lab").order_by("name", "-version", "pk")
        )
        self.fields["lab"].queryset = writable_labs_for_user(user=user)
        for name, hp in catalog.HYPERPARAMETERS.items():
            self.fields[hp_field_name(name)] = _hyperparameter_field(hp)
        for profile in catalog.PROFILES.values():
            for option in profile.options:
                if option.name != "budget":
                    self.fields[option_field_name(profile.key, option.name)] = _option_field(option)
        modality = self._chosen_modality()
        if modality:  # only the tasks that fit the chosen dataset
            self.fields["task"].choices = [("", "Choose a task…")] + [
                (t.key, t.label) for t in catalog.tasks_for_modality(modality)
            ]

    def _chosen_modality(self) -> str | None:
        raw = self.data.get("dataset") if self.is_bound else self.initial.get("dataset")
        raw = getattr(raw, "pk", raw)
        if raw in (None, "") or not str(raw).isdigit():
            return None
        dataset = self.fields["dataset"].queryset.filter(pk=int(raw)).first()
        return dataset.modality if dataset else None

    def add_error(self, field: str | None, error: Any) -> None:
        """Also mark the widget invalid, so Bootstrap outlines the field whose error stands below it."""
        super().add_error(field, error)
        for name in self.errors:
            if name in self.fields:
                widget = self.fields[name].widget
                css = widget.attrs.get("class", "")
                if "is-invalid" not in css:
                    widget.attrs["class"] = f"{css} is-invalid".strip()

    # --- what the template iterates over ---------------------------------------------------

    def profile_cards(self) -> list[tuple[Any, catalog.Profile]]:
        """(radio, profile) pairs: each profile is a card saying what it trades."""
        return [(radio, catalog.PROFILES[radio.data["value"]]) for radio in self["profile"]]

    def preset_cards(self) -> list[tuple[Any, dict[str, Any], dict[str, Any]]]:
        return [(radio, catalog.PRESETS[radio.data["value"]], catalog.PRESET_TRAINING[radio.data["value"]])
                for radio in self["preset"]]

    def split_fields(self) -> list[forms.BoundField]:
        return [self[hp_field_name(n)] for n in SPLIT_HYPERPARAMETERS]

    def advanced_fields(self) -> list[forms.BoundField]:
        return [self[hp_field_name(n)] for n in catalog.HYPERPARAMETERS if n not in SPLIT_HYPERPARAMETERS]

    def profile_option_groups(self) -> list[tuple[catalog.Profile, list[forms.BoundField], bool]]:
        """(profile, its option fields, whether it is the chosen profile) for every profile with options;
        the page shows only the chosen profile's group (only its options apply)."""
        chosen = (self.data.get("profile") if self.is_bound else self.initial.get("profile")) or "baseline"
        return [(p, [self[option_field_name(p.key, o.name)] for o in p.options if o.name != "budget"], p.key == chosen)
                for p in catalog.PROFILES.values() if any(o.name != "budget" for o in p.options)]

    def fields_with_errors(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name in self.errors]

    def advanced_open(self) -> bool:
        """Open the advanced panel when something in it was typed or is wrong."""
        names = [f.html_name for f in self.advanced_fields()] + ["budget"] + [
            f.html_name for _, group, _ in self.profile_option_groups() for f in group]
        if any(n in self.errors for n in names):
            return True
        values = self.data if self.is_bound else self.initial
        return any(values.get(n) not in (None, "") for n in names)

    # --- validation ------------------------------------------------------------------------

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        preset = cleaned.get("preset") or "tiny"
        overrides: dict[str, Any] = {}
        for name in catalog.HYPERPARAMETERS:
            raw = (cleaned.get(hp_field_name(name)) or "").strip()
            if raw == "":
                continue  # empty: the preset's default
            try:
                overrides[name] = catalog.hyperparameters_validate({name: raw}, preset=preset)[name]
            except ValueError as exc:
                self.add_error(hp_field_name(name), str(exc))
        cleaned["hyperparameters"] = overrides
        cleaned["options"] = self._clean_options(cleaned)
        if cleaned.get("device") == Job.Device.CPU and cleaned.get("gpu_count"):
            self.add_error("gpu_count", "a CPU job cannot ask for GPUs: choose GPU or leave this empty")
        return cleaned


    def _clean_options(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        """The chosen profile's options as typed (empty fields: the profile's defaults); the other
        profiles' fields are ignored. An error stands next to its field."""
        profile = catalog.PROFILES.get(cleaned.get("profile") or "")
        if profile is None:
            return {}
        raw: dict[str, Any] = {}
        for option in profile.options:
            name = option_field_name(profile.key, option.name)
            value = cleaned.get(name)
            if option.name == "budget":
                if value is not None:
                    raw["budget"] = value
            elif (value or "").strip():
                raw[option.name] = value.strip()
        if cleaned.get("budget") is not None and profile.option("budget") is None:
            self.add_error("budget", f"the {profile.label} profile has no accuracy budget: leave it empty")
            return {}
        try:
            return catalog.profile_options_resolve(profile.key, raw)
        except catalog.ProfileOptionError as exc:
            self.add_error(option_field_name(profile.key, exc.option) if exc.option else "profile", str(exc))
            return {}


def _option_field(option: catalog.ProfileOption) -> forms.Field:
    """An optional field for one profile option: empty means the option's default."""
    default = "the profile's choice" if option.default is None else hp_initial(option.default)
    if option.type == "bool":
        widget: forms.Widget = forms.Select(
            choices=[("", f"default ({'yes' if option.default else 'no'})"), ("true", "yes"), ("false", "no")],
            attrs={"class": "form-select"})
    elif option.type == "choice":
        widget = forms.Select(choices=[("", f"default ({default})")] + [(c, c) for c in option.choices],
                              attrs={"class": "form-select"})
    else:
        attrs: dict[str, Any] = {"class": "form-control", "step": "1" if option.type == "int" else "any",
                                 "placeholder": default, "inputmode": "decimal"}
        if option.min is not None:
            attrs["min"] = f"{option.min:g}"
        if option.max is not None:
            attrs["max"] = f"{option.max:g}"
        widget = forms.TextInput(attrs=attrs)
    help_text = option.help + (f" Valid: {option.valid_range()}." if option.type in ("int", "float") else "")
    return forms.CharField(required=False, label=option.name, help_text=help_text, widget=widget)


def _hyperparameter_field(hp: catalog.HyperParameter) -> forms.Field:
    """An optional field for one hyperparameter: empty means the preset's default, shown as placeholder."""
    label = hp.name  # the name the API and the CLI use too
    if hp.type == "bool":
        widget: forms.Widget = forms.Select(
            choices=[("", f"default ({'yes' if hp.default else 'no'})"), ("true", "yes"), ("false", "no")],
            attrs={"class": "form-select"},
        )
    elif hp.type == "str":
        widget = forms.Select(choices=[("", f"default ({hp.default})")] + [(c, c) for c in hp.choices],
                              attrs={"class": "form-select"})
    else:
        attrs: dict[str, Any] = {"class": "form-control", "step": "1" if hp.type == "int" else "any",
                                 "placeholder": hp_initial(hp.default), "data-hp": hp.name}
        if hp.min is not None:
            attrs["min"] = f"{hp.min:g}"
        if hp.max is not None:
            attrs["max"] = f"{hp.max:g}"
        # A text input for numbers: what was typed (even "abc") comes back to the server, which says
        # what is wrong next to the field; the numeric keyboard still shows on touch devices.
        widget = forms.TextInput(attrs={**attrs, "inputmode": "decimal"})
    return forms.CharField(required=False, label=label, help_text=hp.help, widget=widget)


# --------------------------------------------------------------------------------------------------
# The catalog's filters


STATUS_CHOICES = [("", "any status")] + list(Job.Status.choices)
ALL_METRICS: tuple[str, ...] = tuple(dict.fromkeys(m for k in catalog.TARGET_KINDS.values() for m in k.metrics))

# Filter field -> the Job lookup it narrows by.
FILTER_LOOKUPS: dict[str, str] = {
    "task": "task_key", "dataset": "dataset_id", "profile": "profile_key", "owner": "owner__username",
    "status": "status", "date_from": "created_at__date__gte", "date_to": "created_at__date__lte",
}
SORT_FIELDS: dict[str, str] = {
    "created": "created_at", "finished": "finished_at", "status": "status", "task": "task_key",
    "profile": "profile_key", "owner": "owner__username", "dataset": "dataset__name", "progress": "progress",
}
SORT_CHOICES = (
    [("created", "date created"), ("finished", "date finished"), ("status", "status"), ("task", "task"),
     ("profile", "profile"), ("owner", "owner"), ("dataset", "dataset"), ("progress", "progress"),
     ("primary", "primary metric (best first when descending)")]
    + [(f"baseline.{m}", f"{m} (baseline model)") for m in ALL_METRICS]
    + [(f"optimized.{m}", f"{m} (optimized model)") for m in ALL_METRICS]
)


def _metric_value(variant: str, metric: str) -> Cast:
    return Cast(KeyTextTransform(metric, f"result__{variant}_metrics"), FloatField())


@lru_cache(maxsize=256)
def _options_html(choices: tuple[tuple[str, str], ...]) -> str:
    return "".join(f'<option value="{escape(key)}">{escape(label)}</option>' for key, label in choices)


class FastSelect(forms.Select):
    """A drop-down rendered in Python: Django renders each <option> through a template (~0.5 ms
    each), which made the catalog's dataset filter cost ~0.4 s per page with 800 datasets. Same
    markup: the attributes the form gives (id, class, aria-*), the selected value(s) marked."""

    def render(self, name: str, value: Any, attrs: dict | None = None, renderer: Any = None) -> str:
        final_attrs = self.build_attrs(self.attrs, attrs)
        # The options of a choice list are rendered once per process (the same lists come back on
        # every page); the selected one is marked on the copy.
        options = _options_html(tuple(("" if k is None else str(k), str(label)) for k, label in self.choices))
        for selected in self.format_value(value):
            plain = f'<option value="{escape(selected)}">'
            options = options.replace(plain, plain[:-1] + " selected>", 1)
        attributes = "".join(format_html(' {}="{}"', key, val) if val is not True else format_html(" {}", key)
                             for key, val in final_attrs.items() if val is not None and val is not False)
        return format_html('<select name="{}"{}>{}</select>', name, mark_safe(attributes), mark_safe(options))


class CatalogFilterForm(forms.Form):
    """GET filters of the catalog: every combination is a URL, so every view of it is a permalink."""

    # Catalog choices are read when the form is built (callables): a task added to the catalog is offered.
    domain = forms.ChoiceField(widget=FastSelect, required=False, choices=lambda: [("", "any domain"), *domain_choices()])
    task = forms.ChoiceField(widget=FastSelect, required=False, choices=lambda: [("", "any task"), *task_choices()])
    dataset = forms.TypedChoiceField(widget=FastSelect, required=False, coerce=int, empty_value=None, choices=[])
    profile = forms.ChoiceField(widget=FastSelect, required=False, choices=lambda: [("", "any profile"), *profile_choices()])
    owner = forms.ChoiceField(widget=FastSelect, required=False, choices=[])
    status = forms.ChoiceField(widget=FastSelect, required=False, choices=STATUS_CHOICES)
    date_from = forms.DateField(required=False, label="created from", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="created to", widget=forms.DateInput(attrs={"type": "date"}))
    sort = forms.ChoiceField(widget=FastSelect, required=False, choices=SORT_CHOICES, initial="created")
    order = forms.ChoiceField(widget=FastSelect, required=False, choices=[("desc", "high → low"), ("asc", "low → high")], initial="desc")

    def __init__(self, data: Any, *, facets: CatalogFacets) -> None:
        super().__init__(data)
        for field in self.fields.values():
            field.widget.attrs.setdefault("class", "form-select" if isinstance(field.widget, forms.Select) else "form-control")
            field.widget.attrs["class"] += " form-control-sm" if "form-control" in field.widget.attrs["class"] else " form-select-sm"
        self.fields["owner"].choices = [("", "anyone")] + [(u, u) for u in facets.owners]
        self.fields["dataset"].choices = [("", "any dataset")] + list(facets.datasets)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", f"the end date {end} is before the start date {start}")
        return cleaned

    def active(self) -> dict[str, Any]:
        """The filters in force (valid and not empty), for the page and the dashboard panels."""
        return {k: v for k, v in self._valid_data().items() if v not in (None, "") and k not in ("sort", "order")}

    def _valid_data(self) -> dict[str, Any]:
        """The fields that validated (an invalid one is ignored, and shown as an error on the form)."""
        self.is_valid()
        return {k: v for k, v in self.cleaned_data.items() if k not in self.errors}

    def sort_key(self) -> str:
        return self._valid_data().get("sort") or "created"

    def sort_order(self) -> str:
        return self._valid_data().get("order") or "desc"

    def filter_queryset(self, jobs: QuerySet[Job]) -> QuerySet[Job]:
        """``jobs`` narrowed by the valid filters and ordered as asked."""
        data = self._valid_data()
        if data.get("domain"):
            jobs = jobs.filter(task_key__in=[t.key for t in catalog.TASKS.values() if t.domain == data["domain"]])
        lookups = {name: data[name] for name in FILTER_LOOKUPS if data.get(name) not in (None, "")}
        jobs = jobs.filter(**{FILTER_LOOKUPS[name]: value for name, value in lookups.items()})
        return self._ordered(jobs, self.sort_key(), self.sort_order())

    @staticmethod
    def _ordered(jobs: QuerySet[Job], sort: str, order: str) -> QuerySet[Job]:
        if sort in SORT_FIELDS:
            key = F(SORT_FIELDS[sort])
        elif sort == "primary":
            # Each job's primary metric of the baseline model as its result stored it (the resolved
            # target kind's: results.selectors.primary_metric), signed so that larger is better (RMSE
            # is negated): descending lists the best results first across tasks.
            value = F("result__primary_value")
            jobs = jobs.annotate(sort_value=Case(When(result__greater_is_better=False, then=-value), default=value,
                                                 output_field=FloatField()))
            key = F("sort_value")
        else:
            variant, metric = sort.split(".", 1)
            jobs = jobs.annotate(sort_value=_metric_value(variant, metric))
            key = F("sort_value")
        ordering = key.desc(nulls_last=True) if order == "desc" else key.asc(nulls_last=True)
        return jobs.order_by(ordering, "-id")
