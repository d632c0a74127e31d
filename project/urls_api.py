from django.urls import include, path

from . import views

urlpatterns = [
    path("whoami", views.whoami),
    path("llm/", include("llm_gateway.urls")),  # the OpenAI API at /llm/v1/
]
