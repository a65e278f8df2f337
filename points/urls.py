from django.urls import path

from points import views

app_name = "points"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("limits/", views.limits, name="limits"),
    path("usage/", views.usage, name="usage"),
]
