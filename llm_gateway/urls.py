from django.urls import path

from . import views

app_name = "llm_gateway"
urlpatterns = [path("health", views.health, name="health")]
