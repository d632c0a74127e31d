"""``include("llm_gateway.portal.urls")`` where the project wants the portal (``gateway/``)."""

from django.urls import path

from . import views

app_name = "llm_gateway_portal"
urlpatterns = [
    path("", views.key_list, name="keys"),
    path("keys/new", views.key_new, name="key_new"),
    path("keys/<int:pk>/", views.key_detail, name="key"),
    path("keys/<int:pk>/revoke", views.key_revoke, name="key_revoke"),
    path("usage", views.usage, name="usage"),
]
