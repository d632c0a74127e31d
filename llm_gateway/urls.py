"""``include("llm_gateway.urls")``: ``health``, ``live``, ``ready``, ``metrics`` and the
OpenAI API under ``v1/``.

path("llm/", include("llm_gateway.urls"))   # the API at /llm/v1/
"""

from django.urls import path, re_path

from . import views

app_name = "llm_gateway"
urlpatterns = [
    path("health", views.health, name="health"),
    path("live", views.live, name="live"),
    path("ready", views.ready, name="ready"),
    path("metrics", views.metrics_view, name="metrics"),
    path("v1/chat/completions", views.relay, {"sub_path": "chat/completions"}, name="chat"),
    path("v1/completions", views.relay, {"sub_path": "completions"}, name="completions"),
    path("v1/embeddings", views.relay, {"sub_path": "embeddings"}, name="embeddings"),
    path("v1/responses", views.relay, {"sub_path": "responses"}, name="responses"),
    path("v1/models", views.relay, {"sub_path": "models"}, name="models"),
    re_path(r"^v1/(?P<sub_path>.*)$", views.relay, name="relay"),
]
