from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("whoami", views.whoami),
    # /health, and the Django face of the relay under /v1/ (the fast path answers /v1 first).
    path("", include("llm_gateway.urls")),
]
