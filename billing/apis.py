"""The billing API: packs, orders and their PaymentIntents, codes, the webhook."""

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import codes, events, gateway, selectors, services
from billing.models import OrderStatus, PointPack
from billing.money import format_price
from common.api import QuerySerializer, StrictCharField, StrictIntegerField
from common.schema import ERROR_RESPONSES, ErrorSerializer
from points.models import Account

ORDERS_DEFAULT_LIMIT = 20
ORDERS_MAX_LIMIT = 100


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


CARD_PAYMENTS_OFF = _error(
    "CSRF failure, or `card_payments_unavailable`: card payment is not set up."
)


class PackSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    points = serializers.IntegerField()
    bonus_points = serializers.IntegerField()
    total_points = serializers.IntegerField()
    price = serializers.IntegerField(help_text="In the currency's minor unit.")
    currency = serializers.CharField(help_text="ISO 4217, lower case.")
    price_display = serializers.SerializerMethodField()

    def get_price_display(self, pack: PointPack) -> str:
        return format_price(pack.price, pack.currency)


class OrderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reference = serializers.UUIDField()
    pack = serializers.IntegerField(source="pack_id", allow_null=True)
    pack_name = serializers.CharField()
    points = serializers.IntegerField()
    bonus_points = serializers.IntegerField()
    amount = serializers.IntegerField(help_text="In the currency's minor unit.")
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    refunded_amount = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)


class PackListApi(APIView):
    class PackListOutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        card_payments = serializers.BooleanField(
            help_text="Whether packs can be bought by card here."
        )
        packs = PackSerializer(many=True)

    @extend_schema(
        operation_id="point_packs",
        responses={200: PackListOutputSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        return Response(
            self.PackListOutputSerializer(
                {
                    "success": True,
                    "card_payments": gateway.card_payments_enabled(),
                    "packs": selectors.packs_on_sale(),
                }
            ).data
        )


class OrderListApi(APIView):
    class OrderListFilterSerializer(QuerySerializer):
        limit = serializers.IntegerField(
            min_value=1, max_value=ORDERS_MAX_LIMIT, default=ORDERS_DEFAULT_LIMIT
        )
        before = serializers.IntegerField(
            min_value=1, required=False, help_text="`next_before` of the last page."
        )

    class OrderListOutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        orders = OrderSerializer(many=True)
        next_before = serializers.IntegerField(allow_null=True)

    class OrderInputSerializer(serializers.Serializer):
        pack = StrictIntegerField(min_value=1, max_value=2**63 - 1)

    class CreatedOrderSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        order = OrderSerializer()
        client_secret = serializers.CharField(
            help_text="The PaymentIntent's client secret, for Stripe's Payment "
            "Element. It is not stored: keep it for this payment only."
        )
        publishable_key = serializers.CharField()

    @extend_schema(
        operation_id="point_orders_list",
        parameters=[OrderListFilterSerializer],
        responses={200: OrderListOutputSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        filters = self.OrderListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        limit = filters.validated_data["limit"]
        page = selectors.orders_of(
            request.user,
            before=filters.validated_data.get("before"),
            limit=limit + 1,
        )
        more = len(page) > limit
        page = page[:limit]
        return Response(
            self.OrderListOutputSerializer(
                {
                    "success": True,
                    "orders": page,
                    "next_before": page[-1].pk if more else None,
                }
            ).data
        )

    @extend_schema(
        operation_id="point_orders_create",
        description="Create an order of a pack and its Stripe PaymentIntent.",
        request=OrderInputSerializer,
        responses={
            201: CreatedOrderSerializer,
            **ERROR_RESPONSES,
            404: _error("`pack_not_found`: no such pack on sale."),
            502: _error("`payment_provider_error`: Stripe did not answer."),
            403: CARD_PAYMENTS_OFF,
        },
    )
    def post(self, request: Request) -> Response:
        payload = self.OrderInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        order, client_secret = services.create_order(
            user=request.user, pack_id=payload.validated_data["pack"]
        )
        return Response(
            self.CreatedOrderSerializer(
                {
                    "success": True,
                    "order": order,
                    "client_secret": client_secret,
                    "publishable_key": gateway.publishable_key(),
                }
            ).data,
            status=status.HTTP_201_CREATED,
        )


class OrderConfirmApi(APIView):
    class ConfirmInputSerializer(serializers.Serializer):
        payment_method = StrictCharField(
            max_length=255,
            validators=[RegexValidator(r"^[A-Za-z]+_[A-Za-z0-9]+$")],
            help_text="A payment method (or card) id made by Stripe.js.",
        )

    class ConfirmedOrderSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        order = OrderSerializer()

    @extend_schema(
        operation_id="point_orders_confirm",
        description=(
            "Confirm the order's PaymentIntent on the server with a payment method "
            "that Stripe.js made in the browser, for pages whose Stripe.js cannot "
            "confirm it there; the order is then recorded as the return page would."
        ),
        request=ConfirmInputSerializer,
        responses={
            200: ConfirmedOrderSerializer,
            **ERROR_RESPONSES,
            402: _error("`payment_declined`: the card was declined."),
            404: _error("`order_not_found`."),
            409: _error("`order_not_payable`: the order is no longer pending."),
            502: _error("`payment_provider_error`: Stripe did not answer."),
            403: CARD_PAYMENTS_OFF,
        },
    )
    def post(self, request: Request, order_id: int) -> Response:
        payload = self.ConfirmInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        order = services.confirm_order(
            user=request.user,
            order_id=order_id,
            payment_method=payload.validated_data["payment_method"],
        )
        return Response(
            self.ConfirmedOrderSerializer({"success": True, "order": order}).data
        )


class RedeemApi(APIView):
    class RedeemInputSerializer(serializers.Serializer):
        code = StrictCharField(max_length=64)

    class RedeemOutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        points = serializers.IntegerField(help_text="Points the code credited.")
        balance = serializers.IntegerField(help_text="The balance now.")
        available = serializers.IntegerField(help_text="Balance less open holds.")

    @extend_schema(
        operation_id="points_redeem",
        request=RedeemInputSerializer,
        responses={
            200: RedeemOutputSerializer,
            **ERROR_RESPONSES,
            400: _error("`invalid_code` (a wrong code) or `invalid_request`."),
            409: _error("`code_used_up` or `code_already_redeemed`."),
            410: _error("`code_expired` or `code_disabled`."),
            429: _error("`throttled`: too many wrong codes; see Retry-After."),
        },
    )
    def post(self, request: Request) -> Response:
        payload = self.RedeemInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        redemption = codes.redeem_code(
            user=request.user,
            code=payload.validated_data["code"],
            address=request.META.get("REMOTE_ADDR", ""),
        )
        account = Account.objects.get(user=request.user)
        return Response(
            self.RedeemOutputSerializer(
                {
                    "success": True,
                    "points": redemption.transaction.amount,
                    "balance": account.balance,
                    "available": account.available,
                }
            ).data
        )


class StripeWebhookApi(APIView):
    """Stripe's events, authenticated by their signature alone."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = ()

    class EventReceivedSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        event = serializers.CharField(help_text="The event's id.")

    @extend_schema(
        operation_id="stripe_webhook",
        description=(
            "Stripe's webhook. The raw body must carry a valid `Stripe-Signature` "
            "made with STRIPE_WEBHOOK_SECRET within the tolerance; each event is "
            "stored once by its id, and events of other types are acknowledged."
        ),
        request={"application/json": {"type": "object"}},
        responses={
            200: EventReceivedSerializer,
            400: _error("`invalid_signature`: missing, wrong or stale signature."),
            403: CARD_PAYMENTS_OFF,
            502: _error("`payment_provider_error`: Stripe will deliver it again."),
        },
    )
    def post(self, request: Request) -> Response:
        stored = events.receive_stripe_event(
            payload=request.body,
            signature=request.headers.get("Stripe-Signature"),
        )
        return Response(
            self.EventReceivedSerializer(
                {"success": True, "event": stored.event_id}
            ).data
        )
