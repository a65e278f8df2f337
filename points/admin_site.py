"""The project's admin site: Django's, with the points dashboard beside the models."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _


class EoraAdminSite(admin.AdminSite):
    def get_urls(self) -> list:
        return [
            path(
                "points/dashboard/",
                self.admin_view(self.points_dashboard),
                name="points_dashboard",
            ),
            *super().get_urls(),
        ]

    def points_dashboard(self, request: HttpRequest) -> HttpResponse:
        # Imported here: this module is loaded with the settings, before the models.
        from points.admin_dashboard import dashboard_view

        return dashboard_view(request, self)

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list:
        """Return the apps, the Points app with its dashboard listed first."""
        from points.admin_dashboard import DASHBOARD_PERMISSION

        apps = super().get_app_list(request, app_label)
        if not request.user.has_perm(DASHBOARD_PERMISSION):
            return apps
        for app in apps:
            if app["app_label"] == "points":
                app["models"].insert(
                    0,
                    {
                        "name": _("Dashboard"),
                        "object_name": "Dashboard",
                        "admin_url": reverse("admin:points_dashboard"),
                        "add_url": None,
                        "view_only": True,
                        "perms": {"view": True},
                    },
                )
        return apps


class EoraAdminConfig(AdminConfig):
    default_site = "points.admin_site.EoraAdminSite"
