"""The points API: balance, history (cursor pages) and the models' rates."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import QuerySerializer, StrictCharField
from common.pagination import CursorPage
from common.schema import ERROR_RESPONSES, PAGE_CURSOR_HELP
from points.history_csv import csv_filename, history_csv, history_csv_async
from points.models import ModelRate, Transaction, TransactionType
from points.pricing import default_rates
from points.selectors import (
    HISTORY_ORDERING,
    WEB_PAGES,
    ApiKeyFilter,
    history,
    history_count,
)
from points.services import (
    MAX_POINTS,
    account_of,
    free_points_reset_at,
    set_spending_limits,
)
from points.usage import (
    CREDIT_TYPES,
    DEFAULT_RANGE_DAYS,
    FIGURE_NAMES,
    MAX_RANGE_DAYS,
    Granularity,
    GroupBy,
    SeriesRow,
    account_usage,
)

HISTORY_DEFAULT_LIMIT = 20
HISTORY_MAX_LIMIT = 100
SINCE_NOT_BEFORE_UNTIL_MESSAGE = _("`since` must be before `until`.")
SINCE_AFTER_UNTIL_MESSAGE = _("`since` must be on or before `until`.")
RANGE_TOO_LONG_MESSAGE = _("The range may be at most %(days)d days long.")
INVALID_API_KEY_FILTER_MESSAGE = _("Send an API key's id, or `web` for the web pages.")


class PointsApi(APIView):
    class PointsSummarySerializer(serializers.Serializer):
        success = serializers.BooleanField()
        points = serializers.IntegerField(
            help_text="Total available points: the balance less open holds."
        )
        available = serializers.IntegerField(help_text="Balance less open holds.")
        held = serializers.IntegerField(help_text="Reserved for answers in progress.")
        total_earned = serializers.IntegerField()
        total_spent = serializers.IntegerField()
        last_updated = serializers.DateTimeField()
        free_points = serializers.IntegerField(
            help_text="Today's free points left (part of `available`)."
        )
        paid_points = serializers.IntegerField(
            help_text="Paid points available (the rest of `available`)."
        )
        free_points_reset_at = serializers.DateTimeField(
            help_text="When free points expire and are topped up: 00:00 in TIME_ZONE."
        )

    @extend_schema(
        operation_id="user_points",
        responses={200: PointsSummarySerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        account = account_of(user=request.user)
        return Response(
            self.PointsSummarySerializer(
                {
                    "success": True,
                    "points": account.available,
                    "available": account.available,
                    "held": account.held,
                    "total_earned": account.total_earned,
                    "total_spent": account.total_spent,
                    "last_updated": account.last_updated,
                    "free_points": account.free_available,
                    "paid_points": account.paid_available,
                    "free_points_reset_at": free_points_reset_at(),
                }
            ).data
        )


class LimitsApi(APIView):
    """The user's own daily and monthly limits on points spent by chat turns."""

    class LimitsInputSerializer(serializers.Serializer):
        daily = serializers.IntegerField(
            allow_null=True,
            min_value=1,
            max_value=MAX_POINTS,
            help_text="Points per day (00:00 to 00:00 in TIME_ZONE); null: none.",
        )
        monthly = serializers.IntegerField(
            allow_null=True,
            min_value=1,
            max_value=MAX_POINTS,
            help_text="Points per calendar month in TIME_ZONE; null: none.",
        )
        alert_below = serializers.IntegerField(
            allow_null=True,
            required=False,
            default=None,
            min_value=1,
            max_value=MAX_POINTS,
            help_text=(
                "Alert (header notice and email, once per crossing) when available"
                " points fall below this; null or absent: none."
            ),
        )

    class LimitsOutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        daily = serializers.IntegerField(allow_null=True)
        monthly = serializers.IntegerField(allow_null=True)
        alert_below = serializers.IntegerField(allow_null=True)
        alert = serializers.BooleanField(
            help_text="Available points are below `alert_below` now."
        )

    def _body(self, account: object) -> dict:
        return self.LimitsOutputSerializer(
            {
                "success": True,
                "daily": account.daily_limit,
                "monthly": account.monthly_limit,
                "alert_below": account.alert_below,
                "alert": account.alert,
            }
        ).data

    @extend_schema(
        operation_id="user_limits",
        responses={200: LimitsOutputSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        return Response(self._body(account_of(user=request.user)))

    @extend_schema(
        operation_id="user_limits_update",
        request=LimitsInputSerializer,
        responses={200: LimitsOutputSerializer, **ERROR_RESPONSES},
    )
    def put(self, request: Request) -> Response:
        payload = self.LimitsInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        account = set_spending_limits(
            account=account_of(user=request.user),
            daily=payload.validated_data["daily"],
            monthly=payload.validated_data["monthly"],
            alert_below=payload.validated_data["alert_below"],
        )
        return Response(self._body(account))


class TokenDetailsSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    model = serializers.CharField()
    prompt_rate = serializers.DecimalField(max_digits=12, decimal_places=4)
    completion_rate = serializers.DecimalField(max_digits=12, decimal_places=4)
    list_cost = serializers.IntegerField(
        allow_null=True, help_text="The turn's cost before its tier discount."
    )
    discount = serializers.IntegerField(help_text="Points the tier took off.")
    tier = serializers.CharField(help_text="The tier's code; empty without one.")


class HistoryRecordSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=TransactionType.choices)
    amount = serializers.IntegerField()
    description = serializers.CharField()
    timestamp = serializers.DateTimeField(source="created_at")
    balance_after = serializers.IntegerField()
    token_details = serializers.SerializerMethodField()

    @extend_schema_field(TokenDetailsSerializer(allow_null=True))
    def get_token_details(self, row: Transaction) -> dict | None:
        if row.total_tokens is None:
            return None
        return TokenDetailsSerializer(row).data


@extend_schema_field(
    {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": ["web"]}]}
)
class ApiKeyFilterField(serializers.Field):
    """An API key's id, or `web` for the rows written on the web pages."""

    default_error_messages = {"invalid": INVALID_API_KEY_FILTER_MESSAGE}

    def to_internal_value(self, data: Any) -> ApiKeyFilter:
        if data == WEB_PAGES:
            return WEB_PAGES
        if not isinstance(data, str) or not data.isascii() or not data.isdigit():
            self.fail("invalid")
        key_id = int(data)
        if not 1 <= key_id <= 2**63 - 1:
            self.fail("invalid")
        return key_id

    def to_representation(self, value: ApiKeyFilter) -> str:
        return str(value)


class HistoryFilterSerializer(QuerySerializer):
    type = serializers.MultipleChoiceField(
        choices=TransactionType.choices, required=False
    )
    since = serializers.DateTimeField(
        required=False, help_text="Rows written at or after this time."
    )
    until = serializers.DateTimeField(
        required=False,
        help_text="Rows written before this time; it must be after `since`.",
    )
    model = StrictCharField(
        required=False, max_length=100, help_text="Rows of this model only."
    )
    api_key = ApiKeyFilterField(
        required=False,
        help_text="Rows paid through this API key (its id); `web`: the web pages'.",
    )

    def validate(self, data: dict) -> dict:
        if "since" in data and "until" in data and data["since"] >= data["until"]:
            raise serializers.ValidationError(SINCE_NOT_BEFORE_UNTIL_MESSAGE)
        return data


def history_filters(options: dict) -> dict[str, Any]:
    """Return a `HistoryFilterSerializer`'s data as `selectors.history` takes it."""
    return {
        "types": sorted(options.get("type") or []),
        "since": options.get("since"),
        "until": options.get("until"),
        "model": options.get("model"),
        "api_key": options.get("api_key"),
    }


class HistoryApi(APIView):
    class HistoryPageFilterSerializer(HistoryFilterSerializer):
        limit = serializers.IntegerField(
            min_value=1, max_value=HISTORY_MAX_LIMIT, default=HISTORY_DEFAULT_LIMIT
        )
        # Decoded by CursorPage; declared here to be checked and documented.
        cursor = serializers.CharField(required=False, help_text=PAGE_CURSOR_HELP)

    class HistoryPageSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        history = HistoryRecordSerializer(many=True)
        total_records = serializers.IntegerField()
        next_cursor = serializers.CharField(
            allow_null=True, help_text="`cursor` of the next page; null on the last."
        )

    @extend_schema(
        operation_id="user_points_history",
        parameters=[HistoryPageFilterSerializer],
        responses={200: HistoryPageSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        filters = self.HistoryPageFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        options = filters.validated_data
        account = account_of(user=request.user)
        filters = history_filters(options)
        rows = history(account, **filters)
        total = history_count(account, **filters)
        pages = CursorPage(
            ordering=HISTORY_ORDERING,
            cursor_query_param="cursor",
            page_size=options["limit"],
        )
        page = pages.paginate_queryset(rows, request)
        return Response(
            self.HistoryPageSerializer(
                {
                    "success": True,
                    "history": page,
                    "total_records": total,
                    "next_cursor": pages.next_cursor(),
                }
            ).data
        )


class ErrorsAsJson(BaseContentNegotiation):
    """Pick JSON whatever `Accept` says: the CSV is the view's own response, and
    errors come in the JSON envelope, not as 406 to a client that asked for CSV."""

    def select_parser(self, request: Request, parsers: list) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: list, format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


class HistoryCsvApi(APIView):
    """The whole filtered history as CSV, streamed newest first."""

    class HistoryCsvFilterSerializer(HistoryFilterSerializer):
        # A new endpoint, strict from the start: `limit` or `cursor` sent here
        # would otherwise be ignored, and a client expecting one page would get
        # the whole history.
        reject_unknown = True

    renderer_classes = [JSONRenderer]
    content_negotiation_class = ErrorsAsJson

    @extend_schema(
        operation_id="user_points_history_csv",
        parameters=[HistoryCsvFilterSerializer],
        responses={
            (200, "text/csv"): {"type": "string"},
            **ERROR_RESPONSES,
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        filters = self.HistoryCsvFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = history(
            account_of(user=request.user), **history_filters(filters.validated_data)
        )
        if isinstance(request._request, ASGIRequest):
            body = history_csv_async(rows)
        else:
            body = history_csv(rows)
        response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
        filename = csv_filename(timezone.localdate())
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class ModelRateSerializer(serializers.Serializer):
    id = serializers.CharField()
    default = serializers.BooleanField()
    prompt_rate = serializers.DecimalField(max_digits=12, decimal_places=4)
    completion_rate = serializers.DecimalField(max_digits=12, decimal_places=4)


class ModelsApi(APIView):
    class ModelListSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        models = ModelRateSerializer(many=True)

    @extend_schema(
        operation_id="models",
        responses={200: ModelListSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        names = list(settings.LLM_MODELS)
        table = {row.model: row for row in ModelRate.objects.filter(model__in=names)}
        fallback = default_rates()
        models = [
            {
                "id": name,
                "default": index == 0,
                "prompt_rate": table[name].prompt_rate
                if name in table
                else fallback.prompt,
                "completion_rate": (
                    table[name].completion_rate
                    if name in table
                    else fallback.completion
                ),
            }
            for index, name in enumerate(names)
        ]
        return Response(
            self.ModelListSerializer({"success": True, "models": models}).data
        )


class UsageFiguresSerializer(serializers.Serializer):
    points = serializers.IntegerField(help_text="Points spent by chat turns.")
    free_points = serializers.IntegerField(
        help_text="The part of `points` paid with daily free points."
    )
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    turns = serializers.IntegerField(help_text="Chat turns charged.")
    uncharged_points = serializers.IntegerField(
        help_text="Cost above a turn's hold that could not be charged."
    )


class UsageSeriesRowSerializer(UsageFiguresSerializer):
    period = serializers.DateField(
        help_text="The day, the Monday of the ISO week, or the 1st of the month."
    )
    group = serializers.CharField(
        allow_null=True,
        help_text="The `id` of a `groups` entry; null without `group_by`.",
    )

    def to_representation(self, row: SeriesRow) -> dict:
        # A year of days by group is thousands of rows: no serializer per row.
        figures = row.figures
        return {
            "period": row.period.isoformat(),
            "group": row.group,
            **{name: getattr(figures, name) for name in FIGURE_NAMES},
        }


class UsageGroupSerializer(serializers.Serializer):
    id = serializers.CharField(
        help_text="The model's name, or the API key's id (\"0\": the web pages)."
    )
    label = serializers.CharField()
    revoked = serializers.BooleanField(help_text="A revoked API key.")


UsageCreditsSerializer = inline_serializer(
    name="UsageCredits",
    fields={
        type: serializers.IntegerField(help_text=f"Signed sum of `{type}` rows.")
        for type in CREDIT_TYPES
    },
)


class UsageApi(APIView):
    """The user's chat usage by TIME_ZONE day, week or month, from the roll-up."""

    class UsageFilterSerializer(QuerySerializer):
        # A misspelt `group-by` would otherwise silently give another report.
        reject_unknown = True

        granularity = serializers.ChoiceField(
            choices=[g.value for g in Granularity], default=Granularity.DAY.value
        )
        group_by = serializers.ChoiceField(
            choices=[g.value for g in GroupBy], required=False
        )
        since = serializers.DateField(
            required=False,
            help_text=(
                f"First day (TIME_ZONE), inclusive; default `until` less "
                f"{DEFAULT_RANGE_DAYS - 1} days."
            ),
        )
        until = serializers.DateField(
            required=False, help_text="Last day (TIME_ZONE), inclusive; default today."
        )

        def validate(self, data: dict) -> dict:
            until = data.get("until") or timezone.localdate()
            since = data.get("since") or until - timedelta(days=DEFAULT_RANGE_DAYS - 1)
            if since > until:
                raise serializers.ValidationError(SINCE_AFTER_UNTIL_MESSAGE)
            if (until - since).days + 1 > MAX_RANGE_DAYS:
                raise serializers.ValidationError(
                    RANGE_TOO_LONG_MESSAGE % {"days": MAX_RANGE_DAYS}
                )
            return {**data, "since": since, "until": until}

    class UsageReportSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        granularity = serializers.ChoiceField(choices=[g.value for g in Granularity])
        group_by = serializers.ChoiceField(
            choices=[g.value for g in GroupBy], allow_null=True
        )
        since = serializers.DateField()
        until = serializers.DateField()
        time_zone = serializers.CharField(help_text="The zone whose days these are.")
        totals = UsageFiguresSerializer()
        groups = UsageGroupSerializer(many=True)
        series = UsageSeriesRowSerializer(
            many=True,
            help_text=(
                "Every period of the range, zeros included; grouped, one row per"
                " period and group."
            ),
        )
        credits = UsageCreditsSerializer

    @extend_schema(
        operation_id="user_usage",
        parameters=[UsageFilterSerializer],
        responses={200: UsageReportSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        filters = self.UsageFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        options = filters.validated_data
        group_by = options.get("group_by")
        usage = account_usage(
            account=account_of(user=request.user),
            since=options["since"],
            until=options["until"],
            granularity=Granularity(options["granularity"]),
            group_by=GroupBy(group_by) if group_by else None,
        )
        return Response(
            self.UsageReportSerializer(
                {
                    "success": True,
                    "granularity": usage.granularity.value,
                    "group_by": usage.group_by.value if usage.group_by else None,
                    "since": usage.since,
                    "until": usage.until,
                    "time_zone": settings.TIME_ZONE,
                    "totals": usage.totals,
                    "groups": usage.groups,
                    "series": usage.series,
                    "credits": usage.credits,
                }
            ).data
        )
