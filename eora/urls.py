from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import apis as account_apis
from accounts import views as account_views
from billing import apis as billing_apis
from billing.metrics import OrderCollector
from chat import api as chat_api
from chat import apis as chat_apis
from chat import openai_api
from chat import views as chat_views
from common import views as errors_views
from common.metrics import metrics_view
from points import apis as points_apis
from points.metrics import HoldCollector

api_patterns = [
    path("chat", chat_api.chat, name="api-chat"),
    path("user/points", points_apis.PointsApi.as_view(), name="api-points"),
    path("user/points/history", points_apis.HistoryApi.as_view(), name="api-history"),
    path(
        "user/points/history.csv",
        points_apis.HistoryCsvApi.as_view(),
        name="api-history-csv",
    ),
    path("user/limits", points_apis.LimitsApi.as_view(), name="api-limits"),
    path("user/usage", points_apis.UsageApi.as_view(), name="api-usage"),
    path("models", points_apis.ModelsApi.as_view(), name="api-models"),
    path(
        "conversations",
        chat_apis.ConversationListApi.as_view(),
        name="api-conversations",
    ),
    path(
        "conversations/<str:conversation_id>",
        chat_apis.ConversationDetailApi.as_view(),
        name="api-conversation",
    ),
    path("keys", account_apis.ApiKeyListApi.as_view(), name="api-keys"),
    path("keys/<int:key_id>", account_apis.ApiKeyDetailApi.as_view(), name="api-key"),
    path("points/packs", billing_apis.PackListApi.as_view(), name="api-point-packs"),
    path("points/orders", billing_apis.OrderListApi.as_view(), name="api-point-orders"),
    path(
        "points/orders/<int:order_id>/confirm",
        billing_apis.OrderConfirmApi.as_view(),
        name="api-point-order-confirm",
    ),
    path("points/redeem", billing_apis.RedeemApi.as_view(), name="api-points-redeem"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"
    ),
    # Matched here rather than by handler404, which DEBUG replaces with its page.
    re_path(r"", errors_views.not_found, name="api-not-found"),
]

urlpatterns = [
    path("", chat_views.home, name="home"),
    path("chat/", include("chat.urls")),
    path("api/", include(api_patterns)),
    path("accounts/", include("accounts.urls")),
    path("settings/api-keys/", account_views.api_keys, name="api-keys-page"),
    path("points/", include("points.urls")),
    path("points/top-up/", include("billing.urls")),
    path(
        "webhooks/stripe/",
        billing_apis.StripeWebhookApi.as_view(),
        name="stripe-webhook",
    ),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path(
        "v1/chat/completions", openai_api.chat_completions, name="v1-chat-completions"
    ),
    path("v1/models", openai_api.models, name="v1-models"),
    re_path(r"^v1/", errors_views.not_found, name="v1-not-found"),
    path(
        "metrics",
        metrics_view,
        {"collectors": [HoldCollector(), OrderCollector()]},
        name="metrics",
    ),
]

handler404 = "common.views.not_found"
handler500 = "common.views.server_error"
