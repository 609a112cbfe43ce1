"""Labformer's Django project: pages, REST API and dashboards. Never imports torch."""
