"""A project that includes the portal alone (its own login elsewhere): the portal's pages
must not assume Django's auth URLs."""

from django.urls import include, path

urlpatterns = [path("people/llm/", include("llm_gateway.portal.urls"))]
