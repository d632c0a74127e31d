"""``include("llm_gateway.urls")``: ``health``, ``live``, ``ready``, ``metrics`` and the
OpenAI API under ``v1/``.

path("llm/", include("llm_gateway.urls"))   # the API at /llm/v1/
"""

from django.urls import path, re_path

from . import views
from .core.endpoints import NAMED

app_name = "llm_gateway"
urlpatterns = [
    path("health", views.health, name="health"),
    path("live", views.live, name="live"),
    path("ready", views.ready, name="ready"),
    path("metrics", views.metrics_view, name="metrics"),
    # The endpoints the gateway reads, by name (their paths: core.endpoints), then any other.
    *(
        path("v1" + endpoint, views.relay, {"sub_path": endpoint[1:]}, name=name)
        for name, endpoint in NAMED.items()
    ),
    re_path(r"^v1/(?P<sub_path>.*)$", views.relay, name="relay"),
]
