"""Template tags for embedding dashboards: ``{% load dashboards %}``.

``{% dashboard_args job_id=job.pk as args %}{% plotly_app name="training_curves" initial_arguments=args %}``
puts ``{"job_id": ...}`` into the dashboard's store (see ``portal.dashboards.common``).
"""

from django import template

from portal.dashboards.common import initial_arguments

register = template.Library()


@register.simple_tag
def dashboard_args(**data) -> str:
    return initial_arguments(**data)
