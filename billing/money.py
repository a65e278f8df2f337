"""Amounts of money: integers in the currency's minor unit, shown for the locale."""

from decimal import Decimal

from django.utils import formats

# Stripe's zero-decimal currencies: their amounts have no minor unit (₩5,000 is 5000).
ZERO_DECIMAL_CURRENCIES = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
CURRENCY_SYMBOLS = {"krw": "₩", "usd": "$", "eur": "€", "jpy": "¥", "gbp": "£"}


def minor_unit_digits(currency: str) -> int:
    return 0 if currency.lower() in ZERO_DECIMAL_CURRENCIES else 2


def format_price(amount: int, currency: str) -> str:
    """Return an amount for the active locale: ₩5,000, $5.00, 5.00 CHF."""
    digits = minor_unit_digits(currency)
    number = formats.number_format(
        Decimal(amount).scaleb(-digits),
        decimal_pos=digits,
        use_l10n=True,
        force_grouping=True,
    )
    symbol = CURRENCY_SYMBOLS.get(currency.lower())
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"
