"""Dash dashboards embedded in the pages (django-plotly-dash)."""
