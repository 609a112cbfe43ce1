"""The launch form's profile options: fields per profile built from the catalog, only the chosen
profile's options apply, errors stand next to their field, clone-and-edit fills them in."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from mlcore import catalog
from portal.jobs.models import Job
from tests.portal.factories import DatasetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(member, lab):  # noqa: ANN001, ANN201
    return DatasetFactory(owner=member, lab=lab, name="promoters", modality="dna", row_count=120)


def _data(dataset, lab, **changes) -> dict:  # noqa: ANN001, ANN003
    data = {"dataset": dataset.pk, "task": "dna-classification", "profile": "baseline", "preset": "tiny",
            "device": "cpu", "lab": lab.pk, "visibility": "lab", "name": "with options"}
    data.update(changes)
    return data


def test_launch_page_has_a_group_of_fields_per_profile_from_the_catalog(member_client, dataset) -> None:  # noqa: ANN001
    html = member_client.get(reverse("web:job_launch")).content.decode()
    for profile in catalog.PROFILES.values():
        names = [o.name for o in profile.options if o.name != "budget"]
        if not names:
            assert f'id="profile-options-{profile.key}"' not in html
            continue
        group = re.search(rf'<div class="[^"]*lf-profile-options[^"]*" data-profile="{profile.key}".*?(?=<div class="row g-3 lf-profile-options|</section>)',
                          html, re.S).group(0)
        assert set(re.findall(r'name="opt_[a-z0-9_]+__([a-z_]+)"', group)) == set(names), profile.key
    # baseline is chosen by default: the other groups are hidden
    assert re.search(r'class="row g-3 lf-profile-options d-none" data-profile="pruned"', html)
    assert 'placeholder="0.5"' in html and "Target share of zero encoder Linear weights." in html


def test_the_chosen_profiles_options_apply_and_the_others_are_ignored(member_client, dataset, lab) -> None:  # noqa: ANN001
    response = member_client.post(reverse("web:job_launch"), _data(
        dataset, lab, profile="distilled", opt_distilled__temperature="4", opt_distilled__student_preset="tiny",
        opt_pruned__sparsity="0.9", budget="0.1"))
    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get()
    assert job.options == {"budget": 0.1, "temperature": 4.0, "alpha": 0.5, "student_preset": "tiny"}
    # Clone and edit shows them again in the distilled group.
    html = member_client.get(reverse("web:job_launch") + f"?clone={job.pk}").content.decode()
    assert re.search(r'name="opt_distilled__temperature" value="4.0"', html)
    assert re.search(r'class="row g-3 lf-profile-options" data-profile="distilled"', html)


def test_a_bad_option_is_refused_next_to_its_field(member_client, dataset, lab) -> None:  # noqa: ANN001
    response = member_client.post(reverse("web:job_launch"), _data(dataset, lab, profile="pruned",
                                                                  opt_pruned__sparsity="1.2"))
    html = response.content.decode()
    assert response.status_code == 400 and not Job.objects.exists()
    assert 'id="error-opt_pruned__sparsity"' in html and "is above the maximum 0.99" in html
    response = member_client.post(reverse("web:job_launch"), _data(dataset, lab, profile="int8",
                                                                  opt_int8__engine="cudnn"))
    assert response.status_code == 400 and 'id="error-opt_int8__engine"' in response.content.decode()
    response = member_client.post(reverse("web:job_launch"), _data(dataset, lab, profile="baseline", budget="0.1"))
    assert response.status_code == 400 and 'id="error-budget"' in response.content.decode()
    assert not Job.objects.exists()


def test_the_job_page_shows_the_options_the_report_was_made_with(member_client, member, dataset) -> None:  # noqa: ANN001
    from django.utils import timezone

    from portal.jobs import services as job_services
    from portal.results import services as result_services

    job = job_services.job_submit(user=member, dataset=dataset, task_key="dna-classification", profile_key="pruned",
                                  options={"sparsity": 0.8})
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, progress=1.0, attempts=1,
                                         started_at=timezone.now(), finished_at=timezone.now())
    stats = {"bytes": 1000, "params": 100, "latency_ms_b1": 1.0, "latency_ms_b32": 5.0, "throughput_b32": 6400.0,
             "sparsity": 0.0, "dtype": "float32", "encoder_weight_bytes": 800, "metrics": {"roc_auc": 0.9}}
    result_services.result_record(
        job_id=job.pk, baseline_metrics={"roc_auc": 0.9}, optimized_metrics={"roc_auc": 0.88},
        compression_report={"profile": "pruned", "primary_metric": "roc_auc", "greater_is_better": True,
                            "metric_delta": -0.02, "speedup_b1": 1.0, "speedup_b32": 1.0, "size_ratio": 2.0,
                            "encoder_weight_ratio": 3.0, "params_ratio": 1.0, "threads": 1, "notes": [],
                            "baseline": stats, "optimized": {**stats, "sparsity": 0.8},
                            "options": dict(job.options)},
    )
    html = member_client.get(reverse("web:job_detail", args=[job.pk])).content.decode()
    options = re.search(r'<span id="report-options">(.*?)</span>', html, re.S).group(1)
    assert "<code>sparsity=0.8</code>" in options and "<code>budget=-</code>" in options
