"""Demo data for the orders domain: tenants, customers, products and orders.

Two paths, chosen by size (`mode="auto"`) or by the caller:

* The app path calls the real API for everything: `core.create_tenant`, then
  `app.create_customer`, `app.create_product`, `app.create_order`, `app.restock_product` when a
  product runs short, `app.process_payment`, `app.update_order_status` and `app.cancel_order`,
  each under `app.set_context` as the tenant's admin. Every rule, identifier and ledger event is
  the one an application would produce. About 400 orders/s on the development VM.

* The bulk path writes the same tables with set-based SQL, one transaction per batch of
  orders (INSERT … SELECT over generate_series under each tenant's context). It does not call
  the app functions, so it re-creates what they guarantee:
    - identifiers come from the tenant's gapless counters, reserved per batch under the
      counter's row lock, so ORD-/CUS-/PAY- numbers stay unique, gapless and in created_at
      order, and later app calls continue from them;
    - each order's items, item count and total agree; paid, shipped and delivered orders have
      a captured payment of exactly the total; orders cancelled after payment have it
      refunded and carry the refund; versions and timestamps follow the lifecycle;
    - products are locked first (in pk order, like core.reserve_stock); after each batch the
      units of its open (pending and paid) orders are added to stock reserved, its shipped
      units leave stock on hand, and on hand is topped up so reservations stay covered.
  By default it also turns off triggers for its own session (`session_replication_role =
  replica`, which needs a superuser): no per-row ledger events, version stamping or
  foreign-key checks for the rows it generates (they are consistent by construction). The
  ledger then gets one `seed.bulk_load` event per batch of orders (and one for the customers
  and one for the products it creates) that says what was loaded, with the identifier range, so the ledger stays verifiable and says honestly that these rows were
  bulk-loaded rather than captured one by one. `with_ledger=True` keeps every trigger on:
  each row is captured like any other write (about three times slower, no superuser needed).
  Orders loaded this way have no per-order history in `app.order_history`.
"""

from __future__ import annotations

import json
import random
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from decimal import Decimal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from strata.connection import connect
from strata.errors import ConfigurationError, StrataError
from strata.ledger import seal_what_committed

# Above this many orders, mode="auto" takes the bulk path.
APP_PATH_LIMIT = 5_000
BULK_BATCH = 20_000

TENANT_NAMES = [
    "Acme Outfitters", "Globex Supply", "Initech Parts", "Umbrella Goods", "Hooli Hardware",
    "Stark Tools", "Wayne Provisions", "Wonka Sweets", "Tyrell Gadgets", "Cyberdyne Components",
]
FIRST_NAMES = [
    "Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis",
    "Radia", "Linus", "Sophie", "Guido", "Anita", "Bjarne", "Hedy", "John", "Katherine", "Niklaus",
    "Shafi", "Tim", "Jean", "Leslie", "Mary", "Vint", "Lynn", "Fran", "Carol", "Whitfield",
]
LAST_NAMES = [
    "Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton",
    "Ritchie", "Perlman", "Torvalds", "Wilson", "Rossum", "Borg", "Stroustrup", "Lamarr", "Backus",
    "Johnson", "Wirth", "Goldwasser", "Berners-Lee", "Sammet", "Lamport", "Keller", "Cerf",
    "Conway", "Bilas", "Shaw", "Diffie",
]
ADJECTIVES = ["Steel", "Oak", "Copper", "Linen", "Granite", "Bamboo", "Cedar", "Brass", "Wool", "Slate",
              "Maple", "Canvas", "Cobalt", "Walnut", "Amber", "Birch"]
NOUNS = ["Widget", "Lamp", "Kettle", "Backpack", "Notebook", "Mug", "Chair", "Blanket", "Planter",
         "Toolbox", "Clock", "Bottle", "Desk", "Basket", "Scarf", "Tray"]
REASONS = ["Customer changed their mind", "Found a better price", "Ordered by mistake",
           "Delivery too slow", "Payment issue"]
METHODS = ["card", "bank_transfer", "cash", "wallet"]

Progress = Callable[[int, str], None]


class SeedError(StrataError):
    """Seeding stopped: the database refused something the seed needed."""


@dataclass
class TenantSeed:
    slug: str
    name: str
    admin: str
    tenant_id: str | None = None
    orders_planned: int = 0
    customers_created: int = 0
    products_created: int = 0
    orders_created: int = 0
    paid: int = 0
    cancelled: int = 0
    customers: int = 0
    products: int = 0
    orders: int = 0


@dataclass
class SeedResult:
    mode: str
    ledger: str
    tenants: list[TenantSeed] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def orders_created(self) -> int:
        return sum(t.orders_created for t in self.tenants)

    @property
    def orders_per_second(self) -> float:
        return self.orders_created / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "ledger": self.ledger,
            "seconds": round(self.seconds, 3),
            "orders_created": self.orders_created,
            "orders_per_second": round(self.orders_per_second, 1),
            "tenants": [asdict(t) for t in self.tenants],
        }


def check_can_seed(conn: psycopg.Connection) -> None:
    """Seeding creates tenants (core.create_tenant), which only the owner may call."""
    allowed = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc AS p JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace"
        "                WHERE n.nspname = 'core' AND p.proname = 'create_tenant'"
        "                  AND pg_catalog.has_schema_privilege(n.oid, 'USAGE')"
        "                  AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE'))").fetchone()[0]
    if not allowed:
        raise ConfigurationError("strata seed creates tenants, which needs the owner (strata_owner) or a superuser, "
                                 "on a migrated database.")


def tenant_count(conn: psycopg.Connection) -> int:
    """How many tenants the database holds (the owner's directory view of organizations)."""
    return conn.execute("SELECT count(*) FROM core.tenants()").fetchone()[0]


def demo_tenants(count: int) -> list[TenantSeed]:
    """demo-1 … demo-N, named from a fixed list, each with admin@demo-N.example."""
    tenants = []
    for i in range(1, count + 1):
        name = TENANT_NAMES[(i - 1) % len(TENANT_NAMES)]
        if i > len(TENANT_NAMES):
            name = f"{name} {(i - 1) // len(TENANT_NAMES) + 1}"
        tenants.append(TenantSeed(slug=f"demo-{i}", name=name, admin=f"admin@demo-{i}.example"))
    return tenants


def split(total: int, parts: int) -> list[int]:
    """`total` spread over `parts` as evenly as possible, the remainder to the first ones."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def catalog_size(orders: int) -> tuple[int, int]:
    """Customers and products for a tenant that will get `orders` orders."""
    customers = min(max(orders // 20, 10), 5_000)
    products = min(max(orders // 500, 12), 200)
    return customers, products


def customer_fields(slug: str, i: int) -> dict:
    first = FIRST_NAMES[i % len(FIRST_NAMES)]
    last = LAST_NAMES[(i // len(FIRST_NAMES)) % len(LAST_NAMES)]
    return {"name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}.{i}@{slug}.example",
            "phone": f"+1 555 {i // 10000 % 1000:03d} {i % 10000:04d}"}


def product_fields(i: int) -> dict:
    adjective = ADJECTIVES[i % len(ADJECTIVES)]
    noun = NOUNS[(i // len(ADJECTIVES)) % len(NOUNS)]
    cents = 499 + (i * 7919) % 24_500
    return {"sku": f"SKU-{i:04d}", "name": f"{adjective} {noun}", "price": Decimal(cents) / 100}


def seed(url: str, *, tenants: int, orders: int, mode: str = "auto", with_ledger: bool = False,
         jobs: int = 2, progress: Progress | None = None) -> SeedResult:
    """Creates (or reuses) `tenants` demo tenants and adds `orders` orders spread over them."""
    if tenants < 1:
        raise ConfigurationError("--tenants must be at least 1.")
    if orders < 0:
        raise ConfigurationError("--orders must not be negative.")
    plan = demo_tenants(tenants)
    for tenant, count in zip(plan, split(orders, tenants)):
        tenant.orders_planned = count
    return seed_tenants(url, plan, mode=mode, with_ledger=with_ledger, jobs=jobs, progress=progress)


def seed_tenants(url: str, plan: list[TenantSeed], *, mode: str = "auto", with_ledger: bool = False,
                 jobs: int = 2, progress: Progress | None = None) -> SeedResult:
    """Creates (or reuses) the planned tenants and adds each its `orders_planned` orders."""
    orders = sum(t.orders_planned for t in plan)
    if mode == "auto":
        mode = "app" if orders <= APP_PATH_LIMIT else "bulk"
    progress = progress or (lambda advance, description: None)
    ledger = "every change" if mode == "app" or with_ledger else "one seed.bulk_load event per batch"
    result = SeedResult(mode=mode, ledger=ledger, tenants=plan)

    started = time.perf_counter()
    with connect(url) as conn:
        if mode == "bulk":
            _check_bulk_prerequisites(conn, with_ledger)
        for tenant in plan:
            _create_tenant(conn, tenant)
    worker = _seed_tenant_app if mode == "app" else _seed_tenant_bulk
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(plan)))) as pool:
        futures = [pool.submit(worker, url, tenant, progress, with_ledger) for tenant in plan]
        for future in futures:
            future.result()
    # Statistics now, not when autovacuum comes by: the planner (and `strata inspect`'s row
    # estimates) should know what was just loaded, on either path.
    progress(0, "analyzing")
    with connect(url) as conn:
        tables = conn.execute("SELECT string_agg(c.oid::regclass::text, ', ' ORDER BY c.oid) FROM pg_catalog.pg_class AS c"
                              " WHERE c.relnamespace IN ('orders'::regnamespace, 'tenancy'::regnamespace)"
                              " AND c.relkind = 'r'").fetchone()[0]
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.SQL(tables)))  # regclass text is quoted
    result.seconds = time.perf_counter() - started
    with connect(url) as conn:
        for tenant in plan:
            _count(conn, tenant)
        seal_what_committed(conn)
    return result


def can_bulk_load_without_triggers(conn: psycopg.Connection) -> bool:
    """Whether this login may turn triggers off for its session (the default bulk path)."""
    return conn.execute("SELECT pg_catalog.has_parameter_privilege('session_replication_role', 'SET')").fetchone()[0]


# --- shared ------------------------------------------------------------------------------------

def _create_tenant(conn: psycopg.Connection, tenant: TenantSeed) -> None:
    with conn.transaction():
        row = conn.cursor(row_factory=dict_row).execute(
            "SELECT status, message, id FROM core.create_tenant(%s, %s, %s)",
            (tenant.name, tenant.slug, tenant.admin)).fetchone()
    if row["status"] not in ("created", "noop:already_exists"):
        raise SeedError(f"cannot create tenant {tenant.slug}: {row['status']} ({row['message']})")
    tenant.tenant_id = str(row["id"])


def _count(conn: psycopg.Connection, tenant: TenantSeed) -> None:
    with conn.transaction():
        conn.execute("SELECT core.use_tenant(%s)", (tenant.tenant_id,))
        tenant.customers, tenant.products, tenant.orders = conn.execute(
            "SELECT (SELECT count(*) FROM orders.tb_customer WHERE tenant_id = %(t)s),"
            " (SELECT count(*) FROM orders.tb_product WHERE tenant_id = %(t)s),"
            " (SELECT count(*) FROM orders.tb_order WHERE tenant_id = %(t)s)", {"t": tenant.tenant_id}).fetchone()


def _refused(what: str, row: dict) -> SeedError:
    detail = "; ".join(e["message"] for e in row.get("errors") or []) or row["message"]
    return SeedError(f"{what} was refused: {row['status']} ({detail})")


# --- the app path ------------------------------------------------------------------------------

class _Api:
    """Calls app functions as the tenant's admin, a few calls per transaction (each transaction
    starts with app.set_context, as an application's request would)."""

    def __init__(self, conn: psycopg.Connection, tenant: TenantSeed, per_transaction: int = 25):
        self.conn, self.tenant, self.per_transaction = conn, tenant, per_transaction
        self.cursor = conn.cursor(row_factory=dict_row)
        self.pending = 0

    def __call__(self, function: str, payload: dict) -> dict:
        if self.pending >= self.per_transaction:
            self.flush()
        if self.pending == 0:
            self.cursor.execute("SELECT app.set_context(%s, %s)", (self.tenant.slug, self.tenant.admin))
        self.pending += 1
        return self.cursor.execute(f"SELECT * FROM app.{function}(%s)",
                                   (json.dumps(payload, default=_json_number),)).fetchone()

    def flush(self) -> None:
        if self.pending:
            self.conn.commit()
            self.pending = 0


def _json_number(value):
    if isinstance(value, Decimal):  # prices: JSON numbers with their two decimals
        return float(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _seed_tenant_app(url: str, tenant: TenantSeed, progress: Progress, _with_ledger: bool) -> None:
    rng = random.Random(f"strata-seed:{tenant.slug}")
    n_customers, n_products = catalog_size(tenant.orders_planned)
    with connect(url, autocommit=False) as conn:
        api = _Api(conn, tenant)
        customers = []
        for i in range(1, n_customers + 1):
            row = api("create_customer", customer_fields(tenant.slug, i))
            if row["status"] not in ("created", "noop:already_exists"):
                raise _refused(f"customer {i} of {tenant.slug}", row)
            tenant.customers_created += row["status"] == "created"
            customers.append(row["identifier"])
        # Enough stock for about half the expected demand: the rest comes from restocking.
        demand = max(tenant.orders_planned * 4 // n_products, 10)
        products = []
        for i in range(1, n_products + 1):
            fields = product_fields(i)
            row = api("create_product", {**fields, "stock": rng.randint(demand // 3, demand)})
            if row["status"] not in ("created", "noop:already_exists"):
                raise _refused(f"product {fields['sku']} of {tenant.slug}", row)
            tenant.products_created += row["status"] == "created"
            products.append((row["identifier"], fields["price"]))
        api.flush()

        for _ in range(tenant.orders_planned):
            order = _app_order(api, rng, customers, products)
            tenant.orders_created += 1
            _app_lifecycle(api, rng, order, tenant)
            progress(1, tenant.slug)
        api.flush()


def _app_order(api: _Api, rng: random.Random, customers: list[str], products: list[tuple[str, Decimal]]) -> dict:
    # Low-numbered customers and products are the popular ones.
    customer = customers[int(len(customers) * rng.random() ** 2)]
    lines = rng.sample(products, k=min(len(products), rng.choice((1, 1, 2, 2, 3))))
    items = [{"product": sku, "quantity": rng.randint(1, 3)} for sku, _ in lines]
    payload = {"customer": customer, "items": items}
    if rng.random() < 0.2:
        payload["notes"] = rng.choice(["Leave at the front door.", "Gift wrap, please.", "Call before delivery."])
    for _attempt in range(3):
        row = api("create_order", payload)
        if row["status"] == "created":
            return row
        if row["status"] != "conflict:insufficient_stock":
            raise _refused("an order", row)
        for error in row["errors"]:  # items[i].quantity: restock what ran short, then retry
            index = int(error["field"].split("[")[1].split("]")[0])
            restock = api("restock_product", {"product": items[index]["product"], "quantity": 50 + 10 * items[index]["quantity"]})
            if restock["status"] != "updated":
                raise _refused("a restock", restock)
    raise SeedError("an order stayed short of stock after restocking twice.")


def _app_lifecycle(api: _Api, rng: random.Random, order: dict, tenant: TenantSeed) -> None:
    """Moves a new order along: most are paid, many shipped and delivered, a few cancelled."""
    ref, version, total = order["identifier"], order["version"], order["object_data"]["totalAmount"]
    roll = rng.random()
    if roll < 0.04:
        _expect(api("cancel_order", {"order": ref, "reason": rng.choice(REASONS), "version": version}), "updated")
        tenant.cancelled += 1
        return
    if roll < 0.2:
        return  # stays pending
    row = _expect(api("process_payment", {"order": ref, "amount": total, "method": rng.choice(METHODS),
                                          "version": version}), "updated")
    tenant.paid += 1
    version = row["version"]
    roll = rng.random()
    if roll < 0.05:
        _expect(api("cancel_order", {"order": ref, "reason": rng.choice(REASONS), "version": version}), "updated")
        tenant.cancelled += 1
    elif roll < 0.7:
        version = _expect(api("update_order_status", {"order": ref, "status": "shipped", "version": version}), "updated")["version"]
        if roll < 0.5:
            _expect(api("update_order_status", {"order": ref, "status": "delivered", "version": version}), "updated")


def _expect(row: dict, status: str) -> dict:
    if row["status"] != status:
        raise _refused(f"{row.get('identifier') or 'an order'}", row)
    return row


# --- the bulk path -----------------------------------------------------------------------------

def _check_bulk_prerequisites(conn: psycopg.Connection, with_ledger: bool) -> None:
    can_write, can_replica, has_uuid_at = conn.execute(
        "SELECT pg_catalog.has_table_privilege('orders.tb_order', 'INSERT'),"
        " pg_catalog.has_parameter_privilege('session_replication_role', 'SET'),"
        " pg_catalog.to_regprocedure('core.uuid_v7(timestamptz)') IS NOT NULL").fetchone()
    if not has_uuid_at:
        raise ConfigurationError("The bulk path needs core.uuid_v7(timestamptz) from migration 0006_uuid_v7_at; "
                                 "run strata migrate first.")
    if not can_write:
        raise ConfigurationError("The bulk path writes the orders tables directly, which needs the owner "
                                 "(strata_owner) or a superuser; use --mode app for a small data set.")
    if not with_ledger and not can_replica:
        raise ConfigurationError("The bulk path turns off per-row triggers for its session, which needs a superuser; "
                                 "add --with-ledger to keep them on (slower), or use --mode app.")


def _ident(prefix: str, number: str) -> str:
    """The expression core.next_identifier() would return for `number`."""
    return (f"'{prefix}' || pg_catalog.lpad(({number})::text,"
            f" greatest(6, pg_catalog.length(({number})::text)), '0')")


def _h(value: str, salt: int, modulo: int) -> str:
    """A deterministic pseudo-random integer in [0, modulo) derived from `value`."""
    return f"(abs(pg_catalog.hashint8extended({value}, %(salt)s + {salt})) %% {modulo})"


RESERVE_COUNTER = """
INSERT INTO tenancy.tb_identifier_counter AS c (tenant_id, scope, last_value)
VALUES (%(tenant)s, %(scope)s, %(count)s)
ON CONFLICT (tenant_id, scope) DO UPDATE SET last_value = c.last_value + %(count)s
RETURNING c.last_value - %(count)s
"""

BULK_CUSTOMERS = f"""
INSERT INTO orders.tb_customer (id, tenant_id, identifier, name, email, phone, created_at, created_by, updated_at, updated_by)
SELECT core.uuid_v7(t.at), %(tenant)s, {_ident('CUS-', '%(base)s + g.i')},
       f.first || ' ' || l.last,
       pg_catalog.lower(f.first || '.' || l.last) || '.' || (%(offset)s + g.i) || '@' || %(slug)s || '.example',
       '+1 555 ' || pg_catalog.lpad(((%(offset)s + g.i) / 10000 %% 1000)::text, 3, '0') || ' '
                 || pg_catalog.lpad(((%(offset)s + g.i) %% 10000)::text, 4, '0'),
       t.at, %(actor)s, t.at, %(actor)s
  FROM pg_catalog.generate_series(1, %(count)s) AS g (i)
 CROSS JOIN LATERAL (SELECT %(first_names)s::text[] AS names) AS fn
 CROSS JOIN LATERAL (SELECT fn.names[1 + (%(offset)s + g.i) %% pg_catalog.cardinality(fn.names)] AS first) AS f
 CROSS JOIN LATERAL (SELECT (%(last_names)s::text[])[1 + ((%(offset)s + g.i) / pg_catalog.cardinality(fn.names))
                            %% pg_catalog.cardinality(%(last_names)s::text[])] AS last) AS l
 CROSS JOIN LATERAL (SELECT %(start)s::timestamptz - (%(count)s - g.i + 1) * interval '7 minutes' AS at) AS t
 ORDER BY g.i
"""

BULK_PRODUCTS = f"""
INSERT INTO orders.tb_product (id, tenant_id, identifier, sku, name, price, stock_on_hand, low_stock_threshold,
                               created_at, created_by, updated_at, updated_by)
SELECT core.uuid_v7(%(start)s::timestamptz), %(tenant)s, p.sku, p.sku, p.name, p.price, 0, 5,
       %(start)s, %(actor)s, %(start)s, %(actor)s
  FROM unnest(%(skus)s::text[], %(names)s::text[], %(prices)s::numeric[]) AS p (sku, name, price)
    ON CONFLICT (tenant_id, identifier) DO NOTHING
"""

# One batch of orders: %(count)s orders numbered from %(base)s + 1, the k-th of the tenant's
# new orders created at %(start)s + k * %(step)s seconds (plus jitter below one step), so
# numbers and times agree. Status follows age (older orders are further along) with 4%
# cancelled, half of those after payment. Returns what it wrote and, per product, the units
# the batch's open orders reserve and the units its shipped orders took off the shelf.
BULK_ORDERS = f"""
WITH o AS MATERIALIZED (
    SELECT g.k, %(base)s + g.k - %(k0)s + 1 AS n, t.created_at,
           (%(customers)s::bigint[])[1 + floor(pg_catalog.cardinality(%(customers)s::bigint[]) * (({_h('g.k', 11, 1000003)})::float8 / 1000003) ^ 2)::int] AS fk_customer,
           1 + {_h('g.k', 12, 3)} AS n_lines,
           floor(%(n_products)s * (({_h('g.k', 13, 1000003)})::float8 / 1000003) ^ 2)::int AS first_product,
           CASE WHEN {_h('g.k', 14, 100)} < 2 THEN 'cancelled_paid'
                WHEN {_h('g.k', 14, 100)} < 4 THEN 'cancelled'
                WHEN t.age > interval '10 days' THEN 'delivered'
                WHEN t.age > interval '5 days' THEN 'shipped'
                WHEN t.age > interval '2 days' OR {_h('g.k', 15, 2)} = 0 THEN 'paid'
                ELSE 'pending' END AS fate,
           t.created_at + (5 + {_h('g.k', 16, 55)}) * interval '1 minute' AS paid_at,
           (12 + {_h('g.k', 17, 60)}) * interval '1 hour' AS ship_after,
           (1 + {_h('g.k', 18, 4)}) * interval '1 day' AS deliver_after,
           (1 + {_h('g.k', 19, 24)}) * interval '1 hour' AS cancel_after
      FROM pg_catalog.generate_series(%(k0)s::bigint, %(k0)s::bigint + %(count)s - 1) AS g (k)
     CROSS JOIN LATERAL (
           SELECT %(start)s::timestamptz + (g.k + {_h('g.k', 10, 1000)} / 1000.0) * %(step)s * interval '1 second' AS created_at
       ) AS c
     CROSS JOIN LATERAL (SELECT c.created_at, %(now)s::timestamptz - c.created_at AS age) AS t
),
l AS MATERIALIZED (
    SELECT o.k, j.j AS line_number, (%(products)s::bigint[])[1 + (o.first_product + j.j - 1) %% %(n_products)s] AS fk_product,
           (%(prices)s::numeric[])[1 + (o.first_product + j.j - 1) %% %(n_products)s] AS unit_price,
           1 + {_h('o.k * 4 + j.j', 20, 3)} AS quantity
      FROM o CROSS JOIN LATERAL pg_catalog.generate_series(1, o.n_lines) AS j (j)
),
totals AS (
    SELECT l.k, pg_catalog.sum(l.quantity)::integer AS units, pg_catalog.sum(l.quantity * l.unit_price) AS total
      FROM l GROUP BY l.k
),
s AS MATERIALIZED (
    SELECT o.*, {_ident('ORD-', 'o.n')} AS identifier, totals.units, totals.total,
           CASE WHEN o.fate = 'cancelled_paid' THEN 'cancelled' ELSE o.fate END AS status,
           o.fate IN ('paid', 'shipped', 'delivered', 'cancelled_paid') AS was_paid,
           CASE WHEN o.fate IN ('shipped', 'delivered') THEN o.paid_at + o.ship_after END AS shipped_at,
           CASE WHEN o.fate = 'delivered' THEN o.paid_at + o.ship_after + o.deliver_after END AS delivered_at,
           CASE WHEN o.fate = 'cancelled' THEN least(o.created_at + o.cancel_after, %(now)s::timestamptz)
                WHEN o.fate = 'cancelled_paid' THEN least(o.paid_at + o.cancel_after, %(now)s::timestamptz) END AS cancelled_at
      FROM o JOIN totals ON totals.k = o.k
),
new_orders AS (
    INSERT INTO orders.tb_order (id, tenant_id, identifier, fk_customer, status, item_count, total_amount, refund_amount,
                                 notes, cancel_reason, paid_at, shipped_at, delivered_at, cancelled_at, version,
                                 created_at, created_by, updated_at, updated_by)
    SELECT core.uuid_v7(s.created_at), %(tenant)s, s.identifier, s.fk_customer, s.status, s.units, s.total,
           CASE WHEN s.fate = 'cancelled_paid' THEN s.total END,
           CASE WHEN {_h('s.k', 21, 10)} = 0 THEN (%(notes)s::text[])[1 + {_h('s.k', 22, 3)}] END,
           CASE WHEN s.status = 'cancelled' THEN (%(reasons)s::text[])[1 + {_h('s.k', 23, 5)}] END,
           CASE WHEN s.was_paid THEN s.paid_at END, s.shipped_at, s.delivered_at, s.cancelled_at,
           CASE s.fate WHEN 'pending' THEN 1 WHEN 'paid' THEN 2 WHEN 'shipped' THEN 3 WHEN 'delivered' THEN 4
                       WHEN 'cancelled' THEN 2 ELSE 3 END,
           s.created_at, %(actor)s,
           coalesce(s.cancelled_at, s.delivered_at, s.shipped_at, CASE WHEN s.was_paid THEN s.paid_at END, s.created_at),
           %(actor)s
      FROM s ORDER BY s.k
    RETURNING pk_order, identifier
),
new_items AS (
    INSERT INTO orders.tb_order_item (id, tenant_id, identifier, fk_order, fk_product, line_number, quantity,
                                      unit_price, line_total, created_at, created_by, updated_at, updated_by)
    SELECT core.uuid_v7(s.created_at), %(tenant)s, s.identifier || '-' || l.line_number, n.pk_order, l.fk_product,
           l.line_number, l.quantity, l.unit_price, l.quantity * l.unit_price,
           s.created_at, %(actor)s, s.created_at, %(actor)s
      FROM l JOIN s ON s.k = l.k JOIN new_orders AS n ON n.identifier = s.identifier
     ORDER BY l.k, l.line_number
    RETURNING fk_product
),
paid AS (
    SELECT s.*, n.pk_order, pg_catalog.row_number() OVER (ORDER BY s.k) AS pay_no
      FROM s JOIN new_orders AS n ON n.identifier = s.identifier
     WHERE s.was_paid
),
new_payments AS (
    INSERT INTO orders.tb_payment (id, tenant_id, identifier, fk_order, amount, method, status, refunded_at, version,
                                   created_at, created_by, updated_at, updated_by)
    SELECT core.uuid_v7(p.paid_at), %(tenant)s, {_ident('PAY-', '%(pay_base)s + p.pay_no')}, p.pk_order, p.total,
           (%(methods)s::text[])[1 + {_h('p.k', 24, 4)}],
           CASE WHEN p.fate = 'cancelled_paid' THEN 'refunded' ELSE 'captured' END,
           CASE WHEN p.fate = 'cancelled_paid' THEN p.cancelled_at END,
           CASE WHEN p.fate = 'cancelled_paid' THEN 2 ELSE 1 END,
           p.paid_at, %(actor)s, coalesce(CASE WHEN p.fate = 'cancelled_paid' THEN p.cancelled_at END, p.paid_at), %(actor)s
      FROM paid AS p ORDER BY p.k
    RETURNING 1
)
SELECT (SELECT pg_catalog.count(*) FROM new_orders) AS orders,
       (SELECT pg_catalog.count(*) FROM new_items) AS items,
       (SELECT pg_catalog.count(*) FROM new_payments) AS payments,
       (SELECT pg_catalog.count(*) FROM s WHERE s.status = 'cancelled') AS cancelled,
       (SELECT pg_catalog.min(s.identifier) FROM s) AS first_identifier,
       (SELECT pg_catalog.max(s.identifier) FROM s) AS last_identifier,
       (SELECT coalesce(pg_catalog.jsonb_agg(x), '[]')
          FROM (SELECT l.fk_product AS pk,
                       coalesce(pg_catalog.sum(l.quantity) FILTER (WHERE s.fate IN ('pending', 'paid')), 0) AS open,
                       coalesce(pg_catalog.sum(l.quantity) FILTER (WHERE s.fate IN ('shipped', 'delivered')), 0) AS shipped
                  FROM l JOIN s ON s.k = l.k
                 GROUP BY l.fk_product) AS x) AS stock
"""

# After a batch (products are locked since its start): the batch's open orders add to stock
# reserved, its shipped orders' units leave stock on hand, and on hand is topped up to cover
# reservations plus a per-product amount (about one product in ten ends up low on stock).
BULK_STOCK = """
UPDATE orders.tb_product AS p
   SET stock_reserved = p.stock_reserved + d.open,
       stock_on_hand = greatest(p.stock_on_hand - d.shipped,
                                p.stock_reserved + d.open
                                + CASE WHEN abs(pg_catalog.hashint8extended(p.pk_product, 25)) %% 10 = 0
                                       THEN abs(pg_catalog.hashint8extended(p.pk_product, 26)) %% 5
                                       ELSE 20 + abs(pg_catalog.hashint8extended(p.pk_product, 26)) %% 400 END),
       version = p.version + 1,
       updated_at = %(now)s,
       updated_by = %(actor)s
  FROM pg_catalog.jsonb_to_recordset(%(stock)s::jsonb) AS d (pk bigint, open integer, shipped integer)
 WHERE p.tenant_id = %(tenant)s AND p.pk_product = d.pk
"""


def _log_bulk_load(cur: psycopg.Cursor, entity: str, data: dict) -> None:
    """The ledger's record of rows loaded without per-row capture (what, how many, which)."""
    cur.execute("SELECT audit.log_event('seed.bulk_load', %s, NULL, NULL, %s, %s)",
                (entity, json.dumps(data), json.dumps({"source": "strata seed", "capture": "off",
                                                       "note": "bulk-loaded rows; no per-row events"})))


def _seed_tenant_bulk(url: str, tenant: TenantSeed, progress: Progress, with_ledger: bool) -> None:
    n_customers, n_products = catalog_size(tenant.orders_planned)
    salt = zlib.crc32(tenant.slug.encode()) * 100  # each tenant its own, repeatable, mix
    with connect(url, autocommit=False) as conn:
        cur = conn.cursor(row_factory=dict_row)

        def begin() -> None:
            if not with_ledger:
                cur.execute("SET LOCAL session_replication_role = replica")
            cur.execute("SELECT core.use_tenant(%s)", (tenant.tenant_id,))

        begin()
        actor = cur.execute("SELECT id FROM tenancy.tb_user WHERE tenant_id = %s AND email = %s",
                            (tenant.tenant_id, tenant.admin)).fetchone()
        if actor is None:
            raise SeedError(f"tenant {tenant.slug} has no user {tenant.admin} to act as.")
        actor = actor["id"]
        # Set the actor too, so that with triggers on the ledger records who loaded the rows.
        cur.execute("SELECT pg_catalog.set_config('strata.actor_id', %s, true)", (str(actor),))
        # New orders fill the time after the tenant's newest order, at most the last year.
        start, now = conn.execute(
            "SELECT greatest(max(created_at) + interval '1 second', now() - interval '365 days'), now()"
            "  FROM orders.tb_order WHERE tenant_id = %s", (tenant.tenant_id,)).fetchone()
        step = max((now - start).total_seconds(), 1.0) / max(tenant.orders_planned, 1)

        # Customers and products: create the missing ones, once.
        existing = cur.execute("SELECT count(*) AS n FROM orders.tb_customer WHERE tenant_id = %s",
                               (tenant.tenant_id,)).fetchone()["n"]
        missing = max(n_customers - existing, 0)
        if missing:
            base = conn.execute(RESERVE_COUNTER, {"tenant": tenant.tenant_id, "scope": "customer",
                                                  "count": missing}).fetchone()[0]
            cur.execute(BULK_CUSTOMERS, {"tenant": tenant.tenant_id, "slug": tenant.slug, "actor": actor,
                                         "base": base, "offset": existing, "count": missing,
                                         "start": start, "first_names": FIRST_NAMES, "last_names": LAST_NAMES})
            tenant.customers_created = cur.rowcount
        catalog = [product_fields(i) for i in range(1, n_products + 1)]
        cur.execute(BULK_PRODUCTS, {"tenant": tenant.tenant_id, "actor": actor, "start": start,
                                    "skus": [p["sku"] for p in catalog], "names": [p["name"] for p in catalog],
                                    "prices": [p["price"] for p in catalog]})
        tenant.products_created = cur.rowcount
        if not with_ledger:
            cur.execute("SET LOCAL session_replication_role = origin")
            for entity, count in (("customer", tenant.customers_created), ("product", tenant.products_created)):
                if count:
                    _log_bulk_load(cur, entity, {"count": count})
        conn.commit()

        k = 0
        while k < tenant.orders_planned:
            count = min(BULK_BATCH, tenant.orders_planned - k)
            begin()
            cur.execute("SELECT pg_catalog.set_config('strata.actor_id', %s, true)", (str(actor),))
            # Lock order: products (pk order, as core.reserve_stock does), then the counters, as
            # core.create_order takes them, so a concurrent app call cannot deadlock with a batch.
            catalog = cur.execute("SELECT pk_product, price FROM orders.tb_product WHERE tenant_id = %s"
                                  " ORDER BY pk_product FOR UPDATE", (tenant.tenant_id,)).fetchall()
            customers = [r["pk_customer"] for r in cur.execute(
                "SELECT pk_customer FROM orders.tb_customer WHERE tenant_id = %s ORDER BY pk_customer",
                (tenant.tenant_id,))]
            base = conn.execute(RESERVE_COUNTER, {"tenant": tenant.tenant_id, "scope": "order",
                                                  "count": count}).fetchone()[0]
            cur.execute("INSERT INTO tenancy.tb_identifier_counter (tenant_id, scope, last_value)"
                        " VALUES (%s, 'payment', 0) ON CONFLICT DO NOTHING", (tenant.tenant_id,))
            pay_base = conn.execute("SELECT last_value FROM tenancy.tb_identifier_counter"
                                    " WHERE tenant_id = %s AND scope = 'payment' FOR UPDATE",
                                    (tenant.tenant_id,)).fetchone()[0]
            done = cur.execute(BULK_ORDERS, {
                "tenant": tenant.tenant_id, "actor": actor, "base": base, "pay_base": pay_base, "k0": k,
                "count": count, "start": start, "now": now, "step": step, "customers": customers,
                "products": [r["pk_product"] for r in catalog], "prices": [r["price"] for r in catalog],
                "n_products": len(catalog), "notes": ["Leave at the front door.", "Gift wrap, please.",
                                                      "Call before delivery."],
                "reasons": REASONS, "methods": METHODS, "salt": salt}).fetchone()
            cur.execute("UPDATE tenancy.tb_identifier_counter SET last_value = last_value + %s"
                        " WHERE tenant_id = %s AND scope = 'payment'", (done["payments"], tenant.tenant_id))
            cur.execute(BULK_STOCK, {"tenant": tenant.tenant_id, "actor": actor, "now": now,
                                     "stock": json.dumps(done["stock"])})
            if not with_ledger:
                cur.execute("SET LOCAL session_replication_role = origin")
                # The open-order counts' triggers were off too; the products are still locked.
                cur.execute("SELECT core.recount_open_orders()")
                _log_bulk_load(cur, "order", {"orders": done["orders"], "items": done["items"], "payments": done["payments"],
                                              "firstIdentifier": done["first_identifier"],
                                              "lastIdentifier": done["last_identifier"]})
            conn.commit()
            k += count
            tenant.orders_created += done["orders"]
            tenant.paid += done["payments"]
            tenant.cancelled += done["cancelled"]
            progress(count, tenant.slug)
