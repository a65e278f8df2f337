from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("", views.top_up, name="top-up"),
    path("return/", views.payment_return, name="return"),
    path("orders/<int:order_id>/", views.receipt, name="receipt"),
]
