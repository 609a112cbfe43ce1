"""factory-boy factories for the portal models (real rows in the real database)."""

from __future__ import annotations

import uuid

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

from portal.accounts.models import Lab, Membership
from portal.datasets.models import Dataset
from portal.jobs.models import Job


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests")


class LabFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lab

    name = factory.Sequence(lambda n: f"Lab {n}")
    slug = factory.Sequence(lambda n: f"lab-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    lab = factory.SubFactory(LabFactory)
    role = Membership.Role.MEMBER


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    uid = factory.LazyFunction(uuid.uuid4)
    owner = factory.SubFactory(UserFactory)
    lab = factory.SubFactory(LabFactory)
    name = factory.Sequence(lambda n: f"dataset-{n}")
    modality = "dna"
    status = Dataset.Status.READY
    original_file = factory.LazyFunction(lambda: ContentFile(b"sequence,label\nACGT,1\nTTGA,0\n", name="d.csv"))


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    owner = factory.SubFactory(UserFactory)
    lab = factory.SubFactory(LabFactory)
    dataset = factory.SubFactory(DatasetFactory, owner=factory.SelfAttribute("..owner"), lab=factory.SelfAttribute("..lab"))
    task_key = "dna-classification"
    profile_key = "baseline"
    config = factory.LazyFunction(dict)
