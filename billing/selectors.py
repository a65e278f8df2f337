"""Reads of billing: packs on sale and a user's orders."""

from django.db.models import QuerySet

from accounts.models import User
from billing.exceptions import OrderNotFound
from billing.models import Order, PointPack

ORDERS_ORDERING = ("-pk",)


def packs_on_sale() -> QuerySet[PointPack]:
    return PointPack.objects.filter(active=True).order_by("position", "pk")


def orders_of(
    user: User, *, before: int | None = None, limit: int | None = None
) -> list[Order]:
    """Return the user's orders, newest first; `before` an order id, for pages."""
    orders = Order.objects.filter(user=user).order_by(*ORDERS_ORDERING)
    if before is not None:
        orders = orders.filter(pk__lt=before)
    return list(orders[:limit] if limit is not None else orders)


def order_of(user: User, order_id: int) -> Order:
    order = Order.objects.filter(user=user, pk=order_id).first()
    if order is None:
        raise OrderNotFound()
    return order
