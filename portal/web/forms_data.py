"""Forms of the data pages. They check shapes and choices; the services decide what is allowed."""

from __future__ import annotations

from typing import Any

from django import forms

from mlcore.catalog import MODALITIES, TASKS
from mlcore.columns import ColumnMapping, MappingError
from mlcore.guess import HEAD_BYTES, FileHead, file_guess
from portal.accounts.models import Lab, Visibility
from portal.common.catalog_keys import modality_choices, task_choices
from portal.datasets.models import Dataset

# The form's fields of the column mapping (mlcore.columns.ColumnMapping: the dataset's schema holds its to_dict()).
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

    modality = forms.ChoiceField(choices=modality_choices,  # the catalog's, read per form
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
        self.fields["task"].choices = [("", "— none: check the records only —"), *task_choices()]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        task = data.get("task")
        modality = data.get("modality")
        if task and modality and TASKS[task].modality != modality:
            self.add_error("task", f"{TASKS[task].label} needs {MODALITIES[TASKS[task].modality].label.lower()}, "
                                   f"not {MODALITIES[modality].label.lower()}")
        try:
            self.column_mapping()
        except MappingError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc))
        return data

    def column_mapping(self) -> ColumnMapping:
        """The form's column mapping (MappingError when a column plays two roles)."""
        data = self.cleaned_data
        return ColumnMapping(**{key: data.get(key) or None for key in (*MAPPING_LISTS, *MAPPING_SINGLE)})

    def mapping(self) -> dict[str, Any]:
        """The column mapping as the dataset's schema stores it (empty entries left out: defaults apply)."""
        data = self.cleaned_data
        schema: dict[str, Any] = self.column_mapping().to_dict()
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

    modality = forms.ChoiceField(choices=modality_choices)
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
        self.fields["modality"].required = False
        self.fields["modality"].choices = [("", "— guess from the file —"), *modality_choices()]
        self.guess_reason = ""

    def clean(self) -> dict[str, Any]:
        """Read the file's first records: guess the modality when none is chosen, and check the mapping
        names columns the header has, before a byte is stored."""
        data = self.cleaned_data
        upload = data.get("file")
        if upload is None:
            return super().clean()
        head_bytes = upload.read(HEAD_BYTES)
        upload.seek(0)
        head, guess = file_guess(head_bytes, upload.name)
        if not data.get("modality"):
            if guess is None:
                self.add_error("modality", "the modality could not be told from the file's first records: choose it")
                return data
            data["modality"] = guess.modality
            self.guess_reason = guess.reason
            if guess.input_col and not data.get("input_cols") and \
                    guess.input_col != MODALITIES[guess.modality].default_input_col:
                data["input_cols"] = [guess.input_col]
        super().clean()
        for name, message in mapping_problems(head=head, data=data).items():
            self.add_error(name, message)
        return data


def mapping_problems(*, head: FileHead, data: dict[str, Any]) -> dict[str, str]:
    """Mapped columns the file's header lacks, per form field (empty when the header is unknown: FASTA
    labels, SDF properties and Parquet columns are only known once the file is read)."""
    if head.format not in ("csv", "tsv") or not head.columns:
        return {}
    folded = {c.lower() for c in head.columns}
    listed = ", ".join(head.columns)
    problems: dict[str, str] = {}
    for name in (*MAPPING_LISTS, *MAPPING_SINGLE):
        value = data.get(name)
        missing = [c for c in ([value] if isinstance(value, str) else value or []) if c and c.lower() not in folded]
        if missing:
            problems[name] = f"{', '.join(repr(c) for c in missing)} is not in the file's header (columns: {listed})"
    task = TASKS.get(data.get("task") or "")
    if task and not data.get("target_cols") and task.default_target_col.lower() not in folded:
        problems["target_cols"] = (f"{task.label} reads its target from a column {task.default_target_col!r}, "
                                   f"which the file lacks (columns: {listed}): choose the target column")
    return problems


class APITokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. “laptop CLI” or “cluster sweep”.")
    expires_at = forms.DateTimeField(
        required=False, label="Expires", help_text="Optional. Leave empty for a token that lasts until revoked.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )
