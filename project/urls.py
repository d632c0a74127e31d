from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("gateway/", include("llm_gateway.portal.urls")),  # the self-service portal
    path("accounts/", include("django.contrib.auth.urls")),  # its login page (and logout)
    path("whoami", views.whoami),
    # /health, and the Django face of the relay under /v1/ (the fast path answers /v1 first).
    path("", include("llm_gateway.urls")),
]
if settings.OIDC_ENABLED:  # single sign-on (docs/portal.md)
    urlpatterns.append(path("oidc/", include("mozilla_django_oidc.urls")))
