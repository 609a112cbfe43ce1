"""Reads of datasets. Every access to a dataset on behalf of a user goes through here."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from portal.accounts.selectors import visible_to_user_q
from portal.datasets.models import Dataset


def dataset_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Dataset]:
    return Dataset.objects.filter(visible_to_user_q(user=user)).select_related("owner", "lab")


def dataset_get_for_user(*, user: AbstractBaseUser | AnonymousUser, dataset_id: int) -> Dataset:
    """The dataset if ``user`` may see it; ``Dataset.DoesNotExist`` otherwise (a 404, never a 403)."""
    return dataset_list_for_user(user=user).get(pk=dataset_id)
