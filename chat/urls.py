from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.conversation_list, name="index"),
    path("new/", views.new_conversation, name="new"),
    path("send/", views.send_message, name="send"),
    path("estimate/", views.estimate, name="estimate"),
    path("turns/<str:key>/", views.turn_outcome, name="turn-outcome"),
    path("<uuid:conversation_id>/", views.conversation_detail, name="conversation"),
]
