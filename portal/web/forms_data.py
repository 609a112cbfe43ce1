"""Forms of the data pages. They check shapes and choices; the services decide what is allowed."""

from __future__ import annotations

from typing import Any

from django import forms

from mlcore.catalog import MODALITIES, TASKS
from portal.accounts.models import Lab, Visibility
from portal.datasets.models import Dataset

# Which mapping entries a dataset's schema holds (the keys the validation worker reads).
MAPPING_LISTS = ("input_cols", "target_cols")
MAPPING_SINGLE = ("id_col", "group_col", "split_col")


class ColumnsField(forms.Field):
    """Zero or more column names: a multiple select posts several values, a text box "a, b"."""

    widget = forms.SelectMultiple

    def to_python(self, value: Any) -> list[str]:
        if value in (None, ""):
            return []
        values = value if isinstance(value, (list, tuple)) else [value]
        names: list[str] = []
        for item in values:
            for name in str(item).split(","):
                name = name.strip()
                if name and name not in names:
                    names.append(name)
        return names


class DatasetMappingForm(forms.Form):
    """How a file is read: its modality, column mapping and policy. The dataset page's "Edit the
    mapping" form is this alone (a new version of the same bytes); the upload form adds the file."""

    modality = forms.ChoiceField(choices=[(m.key, m.label) for m in MODALITIES.values()],
                                 help_text="Guessed from the file's header and first records; change it if wrong.")
    task = forms.ChoiceField(required=False, help_text="Optional: check the target column for this task now.")
    input_cols = ColumnsField(required=False, label="Input column(s)",
                              help_text="Tabular data: the feature columns (Ctrl/⌘-click for several).")
    target_cols = ColumnsField(required=False, label="Target column(s)",
                               help_text="Several only for multi-target regression (Ctrl/⌘-click).")
    id_col = forms.CharField(required=False, max_length=200, label="ID column")
    group_col = forms.CharField(required=False, max_length=200, label="Group column",
                                help_text="Records of one group stay in one split.")
    split_col = forms.CharField(required=False, max_length=200, label="Split column",
                                help_text="train / val / test per record, if the file has one.")
    policy = forms.ChoiceField(choices=Dataset.Policy.choices, initial=Dataset.Policy.STRICT,
                               widget=forms.RadioSelect)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["task"].choices = [("", "— none: check the records only —")] + [
            (t.key, t.label) for t in TASKS.values()
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        task = data.get("task")
        modality = data.get("modality")
        if task and modality and TASKS[task].modality != modality:
            self.add_error("task", f"{TASKS[task].label} needs {MODALITIES[TASKS[task].modality].label.lower()}, "
                                   f"not {MODALITIES[modality].label.lower()}")
        return data

    def mapping(self) -> dict[str, Any]:
        """The column mapping as the dataset's schema stores it (empty entries left out: defaults apply)."""
        data = self.cleaned_data
        schema: dict[str, Any] = {key: data[key] for key in MAPPING_LISTS if data.get(key)}
        schema.update({key: data[key].strip() for key in MAPPING_SINGLE if (data.get(key) or "").strip()})
        if data.get("task"):
            schema["task"] = data["task"]
        return schema

    @staticmethod
    def initial_from(dataset: Dataset) -> dict[str, Any]:
        """The form's initial values: the dataset's own modality, mapping and policy."""
        schema = dataset.schema or {}
        initial: dict[str, Any] = {"modality": dataset.modality, "policy": dataset.policy,
                                   "task": schema.get("task") or ""}
        for key in MAPPING_LISTS:
            value = schema.get(key) or []
            initial[key] = ", ".join([value] if isinstance(value, str) else value)
        initial.update({key: schema.get(key) or "" for key in MAPPING_SINGLE})
        return initial


class DatasetRemapForm(DatasetMappingForm):
    """Edit the mapping: lists of columns are typed ("a, b"), since the page has no file to read a header from."""

    input_cols = ColumnsField(required=False, label="Input column(s)", widget=forms.TextInput,
                              help_text="Comma-separated; empty: the modality's default (tabular: every other column).")
    target_cols = ColumnsField(required=False, label="Target column(s)", widget=forms.TextInput,
                               help_text="Comma-separated; empty: the task's default (label / target / labels).")


class DatasetUploadForm(DatasetMappingForm):
    """The upload page. Small files come with the form; large ones go through the chunked API, which
    takes the same fields (the page's JavaScript sends them there)."""

    file = forms.FileField(label="File", help_text="CSV, TSV, FASTA, SDF or Parquet; .gz compressed is fine.")
    name = forms.CharField(max_length=200, help_text="Uploading again under the same name makes a new version.")
    lab = forms.ChoiceField(help_text="The lab the dataset belongs to.")
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.LAB)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    field_order = ["file", "name", "lab", "modality", "task", "input_cols", "target_cols", "id_col", "group_col",
                   "split_col", "policy", "visibility", "description"]

    def __init__(self, *args: Any, labs: list[Lab], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["lab"].choices = [(lab.slug, f"{lab.name} ({lab.slug})") for lab in labs]


class APITokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. “laptop CLI” or “cluster sweep”.")
    expires_at = forms.DateTimeField(
        required=False, label="Expires", help_text="Optional. Leave empty for a token that lasts until revoked.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )
