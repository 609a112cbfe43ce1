"""The access rule, as a matrix: viewer relation × object visibility, for every access selector.

owner / same lab (member and viewer roles) / other lab / anonymous  ×  private / lab / public
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from portal.accounts.models import Membership, Visibility
from portal.datasets.selectors import dataset_get_for_user, dataset_list_for_user
from portal.datasets.models import Dataset
from portal.jobs.models import Job
from portal.jobs.selectors import job_get_for_user, job_list_for_user
from tests.portal.factories import DatasetFactory, JobFactory, LabFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

# Who can see an object of each visibility. "lab_viewer" holds the read-only role in the object's lab.
EXPECTED = {
    "owner": {"private": True, "lab": True, "public": True},
    "lab_member": {"private": False, "lab": True, "public": True},
    "lab_viewer": {"private": False, "lab": True, "public": True},
    "other_lab": {"private": False, "lab": False, "public": True},
    "anonymous": {"private": False, "lab": False, "public": False},
}


@pytest.fixture
def world() -> dict:
    lab, other = LabFactory(), LabFactory()
    owner = MembershipFactory(lab=lab, role=Membership.Role.OWNER).user
    users = {
        "owner": owner,
        "lab_member": MembershipFactory(lab=lab, role=Membership.Role.MEMBER).user,
        "lab_viewer": MembershipFactory(lab=lab, role=Membership.Role.VIEWER).user,
        "other_lab": MembershipFactory(lab=other, role=Membership.Role.OWNER).user,
        "anonymous": AnonymousUser(),
    }
    datasets = {v: DatasetFactory(owner=owner, lab=lab, visibility=v) for v in Visibility.values}
    # A job's visibility is its own, independent of its dataset's (a public result of private data).
    jobs = {v: JobFactory(owner=owner, lab=lab, dataset=datasets["private"], visibility=v) for v in Visibility.values}
    return {"users": users, "datasets": datasets, "jobs": jobs}


@pytest.mark.parametrize("who", list(EXPECTED))
@pytest.mark.parametrize("visibility", ["private", "lab", "public"])
def test_dataset_access_matrix(world: dict, who: str, visibility: str) -> None:
    user = world["users"][who]
    dataset = world["datasets"][visibility]
    expected = EXPECTED[who][visibility]
    assert (dataset in dataset_list_for_user(user=user)) is expected
    if expected:
        assert dataset_get_for_user(user=user, dataset_id=dataset.pk) == dataset
    else:
        with pytest.raises(Dataset.DoesNotExist):
            dataset_get_for_user(user=user, dataset_id=dataset.pk)


@pytest.mark.parametrize("who", list(EXPECTED))
@pytest.mark.parametrize("visibility", ["private", "lab", "public"])
def test_job_access_matrix(world: dict, who: str, visibility: str) -> None:
    user = world["users"][who]
    job = world["jobs"][visibility]
    expected = EXPECTED[who][visibility]
    assert (job in job_list_for_user(user=user)) is expected
    if expected:
        assert job_get_for_user(user=user, job_id=job.pk) == job
    else:
        with pytest.raises(Job.DoesNotExist):
            job_get_for_user(user=user, job_id=job.pk)


def test_missing_and_hidden_look_the_same(world: dict) -> None:
    """Another lab's private dataset and an id that does not exist raise the same error."""
    user = world["users"]["other_lab"]
    with pytest.raises(Dataset.DoesNotExist) as hidden:
        dataset_get_for_user(user=user, dataset_id=world["datasets"]["private"].pk)
    with pytest.raises(Dataset.DoesNotExist) as missing:
        dataset_get_for_user(user=user, dataset_id=10**9)
    assert type(hidden.value) is type(missing.value)


def test_list_has_no_duplicates_for_multi_lab_users(world: dict) -> None:
    """A user in several labs sees each public object once (the OR of joins must not fan out)."""
    user = world["users"]["lab_member"]
    MembershipFactory(user=user, lab=LabFactory())
    ids = list(dataset_list_for_user(user=user).values_list("pk", flat=True))
    assert len(ids) == len(set(ids))


def test_list_queries_do_not_grow_with_rows(world: dict, django_assert_max_num_queries) -> None:  # noqa: ANN001
    user = world["users"]["owner"]
    with django_assert_max_num_queries(1):
        rows = [(j.owner.username, j.lab.name, j.dataset.name) for j in job_list_for_user(user=user)]
    assert len(rows) == 3


def test_user_in_no_lab_sees_only_public(world: dict) -> None:
    loner = UserFactory()
    visible = set(dataset_list_for_user(user=loner))
    assert visible == {world["datasets"]["public"]}
