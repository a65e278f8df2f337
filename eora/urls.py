from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from chat import api as chat_api

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="chat:index"), name="home"),
    path("chat/", include("chat.urls")),
    path("api/chat", chat_api.chat, name="api-chat"),
    path("accounts/", include("accounts.urls")),
    path("points/", include("points.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]
