"""A consistent ledger of many users, generated in SQL, for `bench.usage`.

Every user has a points account and a sign-up bonus as version 1; chat turns
fall on a few active days each (one heavy user is active every day), on four
models, some through API keys and the rest from the web pages (NULL key), some
at a tier's discount. Each active day starts with the day's free points (topped
up to `FREE_POINTS`, which the day's turns spend first) and, when the paid
points run short, a top-up in whole `TOP_UP` steps, so that no balance goes
below zero. Versions and `balance_after` come from window functions; the
accounts get the sums. `points_audit` passes on the result.

The ledger's secondary indexes and the roll-up trigger are dropped while the
rows go in and made again afterwards (`rollup.rebuild`), as an operator would
load a ledger; foreign keys are not checked row by row during the load
(`session_replication_role = replica`): the generator makes them right.
"""

import time
from collections.abc import Callable

SEED = 0.14
MARKER_TABLE = "bench_usage_seed"
FREE_POINTS = 100
SIGNUP_BONUS = 1000
TOP_UP = 5000
DAYS = 180
TIER_CODE = "silver"
TIER_DISCOUNT_BPS = 1000
# name, prompt rate, completion rate, share of turns (cumulative upper bound)
MODELS = (
    ("gpt-4o-mini", "0.0050", "0.0200", 0.50),
    ("gpt-4o", "0.0200", "0.0800", 0.75),
    ("claude-sonnet-4", "0.0300", "0.1200", 0.90),
    ("eora-demo", "0.0010", "0.0010", 1.00),
)
HEAVY_EMAIL = "heavy@bench.example"
TYPICAL_EMAIL = "typical@bench.example"
STAFF_EMAIL = "staff@bench.example"
# Rows of a light user that are not turns: the bonus, a free-points row and now
# and then a top-up per active day; subtracted so that the total comes near --rows.
CREDIT_ROWS_PER_DAY = 1.3


def _model_case(index: int, pick: str) -> str:
    """Return a CASE giving field `index` of the model `pick` (in [0, 1)) falls on."""
    whens = " ".join(
        f"WHEN {pick} < {model[3]} THEN "
        + (f"'{model[0]}'" if index == 0 else f"{model[index]}::numeric")
        for model in MODELS
    )
    return f"CASE {whens} END"


def statements(*, users: int, rows: int, heavy: int, zone: str) -> list[str]:
    """Return the SQL that seeds an empty migrated database, in order."""
    light_rows = max(rows - heavy, users - 1) / max(users - 1, 1)
    local_today = f"(now() AT TIME ZONE '{zone}')::date"
    return [
        f"SELECT setseed({SEED})",
        # Users, the staff user first; `!` is an unusable password.
        f"""
        INSERT INTO accounts_user (password, is_superuser, email, is_staff,
            is_active, date_joined)
        SELECT '!', g = 0, CASE g WHEN 0 THEN '{STAFF_EMAIL}'
            WHEN 1 THEN '{HEAVY_EMAIL}' WHEN 2 THEN '{TYPICAL_EMAIL}'
            ELSE 'user' || g || '@bench.example' END,
            g = 0, true, now() - interval '{DAYS + 10} days'
        FROM generate_series(0, {users}) g
        """,
        """
        INSERT INTO points_account (user_id, balance, held, total_earned,
            total_spent, version, owed, free_balance, free_held, alert,
            last_updated, created_at)
        SELECT id, 0, 0, 0, 0, 0, 0, 0, 0, false, now(), date_joined
        FROM accounts_user
        """,
        f"""
        INSERT INTO points_tier (code, name, discount_bps, purchase_bonus_bps,
            "order")
        VALUES ('{TIER_CODE}', 'Silver', {TIER_DISCOUNT_BPS}, 0, 1)
        ON CONFLICT (code) DO NOTHING
        """,
        # Per user: rows wanted, active days, keys, tier. Light users' rows are
        # exponential around the mean; active days mostly few.
        f"""
        CREATE UNLOGGED TABLE seed_user AS
        SELECT a.id AS account_id, u.id AS user_id, u.email = '{HEAVY_EMAIL}' AS heavy,
            x.days,
            CASE WHEN u.email = '{HEAVY_EMAIL}' THEN 3
                 WHEN u.email = '{TYPICAL_EMAIL}' THEN 2
                 WHEN random() < 0.3 THEN 1 + floor(random() * 3)::int
                 ELSE 0 END AS key_count,
            CASE WHEN random() < 0.1
                 THEN '{TIER_CODE}' ELSE '' END AS tier,
            x.turns
        FROM accounts_user u JOIN points_account a ON a.user_id = u.id,
        LATERAL (
            SELECT CASE WHEN u.email = '{HEAVY_EMAIL}' THEN {DAYS}
                        WHEN u.email = '{TYPICAL_EMAIL}' THEN 6
                        ELSE least({DAYS}, 1 + floor(-ln(1 - random()) * 4)::int)
                   END AS days
        ) d,
        LATERAL (
            SELECT d.days,
                CASE WHEN u.email = '{HEAVY_EMAIL}'
                          THEN greatest(1, {heavy} - 1 - 2 * d.days)
                     WHEN u.email = '{TYPICAL_EMAIL}' THEN {round(light_rows)}
                     ELSE greatest(1, round({light_rows} * -ln(1 - random()))::int
                          - 1 - round({CREDIT_ROWS_PER_DAY} * d.days)::int)
                END AS turns
        ) x
        WHERE NOT u.is_staff
        """,
        """
        INSERT INTO accounts_apikey (user_id, name, prefix, key_hash, created_at,
            limit_period)
        SELECT s.user_id, 'bench key ' || k, 'bk' || s.user_id || 'x' || k,
            repeat('0', 64), now() - interval '200 days', 'none'
        FROM seed_user s, generate_series(1, s.key_count) k
        """,
        f"""
        UPDATE points_account a SET tier_id = t.id
        FROM seed_user s, points_tier t
        WHERE s.account_id = a.id AND s.tier <> '' AND t.code = '{TIER_CODE}'
        """,
        # One row per turn. Days: the heavy user's skewed to recent days, the
        # others' on `days` distinct days of the last DAYS (37 is prime to DAYS).
        f"""
        CREATE UNLOGGED TABLE seed_turn AS
        SELECT s.account_id, s.tier, t.day, t.at, t.model, t.prompt_rate,
            t.completion_rate, t.prompt_tokens, t.completion_tokens, t.key_id
        FROM seed_user s
        LEFT JOIN LATERAL (
            SELECT array_agg(k.id ORDER BY k.id) AS ids FROM accounts_apikey k
            WHERE k.user_id = s.user_id
        ) keys ON true,
        LATERAL generate_series(1, s.turns) g,
        LATERAL (
            SELECT {local_today} - CASE WHEN s.heavy
                    THEN floor(power(random(), 1.5) * {DAYS})::int
                    ELSE (floor(power(random(), 1.5) * s.days)::int * 37
                          + s.account_id * 101)::int % {DAYS} END AS day,
                random() AS pick, random() AS seconds
            -- g makes the subquery run once per turn, not once per user.
            WHERE g IS NOT NULL
        ) r,
        LATERAL (
            SELECT r.day,
                (r.day + make_interval(secs => r.seconds * greatest(1, least(
                    86400, extract(epoch FROM now() - (r.day::timestamp
                        AT TIME ZONE '{zone}')) - 1))))
                    AT TIME ZONE '{zone}' AS at,
                {_model_case(0, "r.pick")} AS model,
                {_model_case(1, "r.pick")}
                    AS prompt_rate,
                {_model_case(2, "r.pick")}
                    AS completion_rate,
                50 + floor(power(random(), 2) * 3000)::int AS prompt_tokens,
                20 + floor(random() * 800)::int AS completion_tokens,
                CASE WHEN keys.ids IS NOT NULL AND random() < 0.6
                    THEN keys.ids[1 + floor(random() * cardinality(keys.ids))::int]
                END AS key_id
        ) t
        """,
        # Each turn's price, and how much of it the day's free points pay.
        f"""
        CREATE UNLOGGED TABLE seed_priced AS
        SELECT p.*, p.list_cost - p.discount AS charged,
            least(p.list_cost - p.discount, greatest(0, {FREE_POINTS}
                - (sum(p.list_cost - p.discount) OVER w - (p.list_cost - p.discount))
            )) AS free_part
        FROM (
            SELECT t.*, ceil(t.prompt_tokens * t.prompt_rate
                + t.completion_tokens * t.completion_rate)::bigint AS list_cost,
                CASE WHEN t.tier <> '' THEN floor(ceil(t.prompt_tokens * t.prompt_rate
                    + t.completion_tokens * t.completion_rate)
                    * {TIER_DISCOUNT_BPS} / 10000)::bigint ELSE 0 END AS discount,
                row_number() OVER () AS turn
            FROM seed_turn t
        ) p
        WINDOW w AS (PARTITION BY p.account_id, p.day ORDER BY p.at, p.turn)
        """,
        # Per active day: the free points topped up to FREE_POINTS (what the
        # previous active day left stays), and top-ups that keep the cumulative
        # paid spending within the bonus plus the top-ups so far.
        f"""
        CREATE UNLOGGED TABLE seed_day AS
        SELECT d.*,
            {FREE_POINTS} - coalesce(greatest(0, {FREE_POINTS}
                - lag(d.spent) OVER w), 0) AS free_top_up,
            ceil(greatest(0, sum(d.paid) OVER w - {SIGNUP_BONUS})::numeric
                / {TOP_UP})::bigint * {TOP_UP}
              - coalesce(ceil(greatest(0, sum(d.paid) OVER w - d.paid
                - {SIGNUP_BONUS})::numeric / {TOP_UP})::bigint * {TOP_UP}, 0)
                AS top_up
        FROM (
            SELECT account_id, day, min(at) AS first_at, sum(charged) AS spent,
                sum(charged - free_part) AS paid
            FROM seed_priced GROUP BY account_id, day
        ) d
        WINDOW w AS (PARTITION BY d.account_id ORDER BY d.day)
        """,
        # All rows in one relation; `rank` orders rows of the same instant.
        """
        CREATE UNLOGGED TABLE seed_row AS
        SELECT account_id, 'signup_bonus' AS type, %(bonus)s::bigint AS amount,
            0::bigint AS free_amount, '' AS tier, NULL::bigint AS list_cost,
            0::bigint AS discount, NULL::int AS prompt_tokens,
            NULL::int AS completion_tokens, '' AS model,
            NULL::numeric AS prompt_rate, NULL::numeric AS completion_rate,
            NULL::bigint AS key_id, first_at - interval '1 minute' AS at,
            0 AS rank, 0::bigint AS turn
        FROM (SELECT account_id, min(first_at) AS first_at FROM seed_day
              GROUP BY account_id) f
        UNION ALL
        SELECT account_id, 'daily_free', free_top_up, free_top_up, '', NULL, 0,
            NULL, NULL, '', NULL, NULL, NULL, first_at - interval '2 seconds', 1, 0
        FROM seed_day WHERE free_top_up > 0
        UNION ALL
        SELECT account_id, 'top_up', top_up, 0, '', NULL, 0, NULL, NULL, '', NULL,
            NULL, NULL, first_at - interval '1 second', 2, 0
        FROM seed_day WHERE top_up > 0
        UNION ALL
        SELECT account_id, 'chat_usage', -charged, -free_part, tier, list_cost,
            discount, prompt_tokens, completion_tokens, model, prompt_rate,
            completion_rate, key_id, at, 3, turn
        FROM seed_priced
        """.replace("%(bonus)s", str(SIGNUP_BONUS)),
        # Rows go in in time order, as an append-only ledger grows.
        """
        INSERT INTO points_transaction (account_id, type, amount, free_amount,
            tier, list_cost, discount, balance_after, version, description,
            prompt_tokens, completion_tokens, total_tokens, model, prompt_rate,
            completion_rate, uncharged_points, request_hash, reason, api_key_id,
            created_at)
        SELECT account_id, type, amount, free_amount, tier, list_cost, discount,
            sum(amount) OVER w, row_number() OVER w, '', prompt_tokens,
            completion_tokens, prompt_tokens + completion_tokens, model,
            prompt_rate, completion_rate, 0, '', '', key_id, at
        FROM seed_row
        WINDOW w AS (PARTITION BY account_id ORDER BY at, rank, turn)
        ORDER BY at, account_id, rank, turn
        """,
        """
        UPDATE points_account a SET balance = s.balance, version = s.version,
            total_earned = s.earned, total_spent = s.spent,
            free_balance = s.free, last_updated = now()
        FROM (
            SELECT account_id, sum(amount) AS balance, count(*) AS version,
                sum(amount) FILTER (WHERE amount > 0) AS earned,
                coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) AS spent,
                sum(free_amount) AS free
            FROM seed_row GROUP BY account_id
        ) s
        WHERE s.account_id = a.id
        """,
        # 402 refusals on about one active day in twenty.
        """
        INSERT INTO points_refusalday (account_id, day, reason, count, last_at)
        SELECT account_id, day, (ARRAY['insufficient_points', 'spending_limit',
            'key_limit'])[1 + floor(random() * 3)::int],
            1 + floor(random() * 5)::int, first_at
        FROM seed_day WHERE random() < 0.05
        """,
        "DROP TABLE seed_user, seed_turn, seed_priced, seed_day, seed_row",
    ]


def secondary_indexes(cursor: object) -> list[tuple[str, str]]:
    """Return the ledger's indexes that back no constraint: (name, definition)."""
    cursor.execute(
        """
        SELECT i.relname, pg_get_indexdef(i.oid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = 'points_transaction'::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)
          AND NOT x.indisunique
        """
    )
    return cursor.fetchall()


def seed(
    *, users: int, rows: int, heavy: int, report: Callable[[str, float], None]
) -> None:
    """Fill the migrated, empty database Django is on; `report` each step's time."""
    from django.conf import settings
    from django.db import connection, transaction

    from points import rollup

    zone = settings.TIME_ZONE.replace("'", "''")
    with connection.cursor() as cursor:
        cursor.execute("SET work_mem = '256MB'")
        cursor.execute("SET maintenance_work_mem = '512MB'")
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        rollup.remove(connection)
        indexes = secondary_indexes(cursor)
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SET LOCAL session_replication_role = replica")
        for statement in statements(users=users, rows=rows, heavy=heavy, zone=zone):
            cursor.execute(statement)
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")
        report("ledger generated and loaded", time.perf_counter() - started)
        step = time.perf_counter()
        for _, definition in indexes:
            cursor.execute(definition)
        report(f"{len(indexes)} secondary indexes rebuilt", time.perf_counter() - step)
    step = time.perf_counter()
    rollup.rebuild(connection)
    report("rollup.rebuild()", time.perf_counter() - step)
    step = time.perf_counter()
    with connection.cursor() as cursor:
        # As autovacuum would leave a table that has stopped changing: the
        # visibility map set, so that index-only scans skip the heap.
        cursor.execute("VACUUM (ANALYZE)")
        cursor.execute(
            f"CREATE TABLE {MARKER_TABLE} (users int, rows bigint, heavy int, "
            "seeded_at timestamptz DEFAULT now(), seconds float)"
        )
        cursor.execute(
            f"INSERT INTO {MARKER_TABLE} (users, rows, heavy, seconds) "
            "VALUES (%s, %s, %s, %s)",
            [users, rows, heavy, time.perf_counter() - started],
        )
    report("VACUUM (ANALYZE)", time.perf_counter() - step)
