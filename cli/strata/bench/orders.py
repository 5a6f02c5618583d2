"""`strata bench --scenario orders`: Strata's one-call API against an ORM-style client doing the
same work, on the same seeded data, measured side by side in one run.

Data. A tenant with 100,000 orders (--quick: 1,000) and a second tenant of the same size, so
row-level security filters for real, loaded by the bulk path of `strata seed` into the
scratch database, then `core.refresh_revenue()`.

Strata. One round trip per operation, as the application login would make it (SET ROLE
strata_app, tenant context set once for the session): a SELECT from an app.v_* view for the
reads, a page of them aggregated into one JSON array (json_agg), as a GraphQL-style API
returns a list; one app.* function call (autocommit) for the writes.

ORM. What Django or SQLAlchemy code does for the same screens and commands, with the same
guarantees, written as the owner (SET ROLE strata_owner) under the same tenant context and
forced RLS:
  * reads load the root rows, then each relation as its own query; by default relations are
    loaded lazily (one query per related row, through an identity map so a row is loaded once
    per request), which is what an ORM does without loading hints; the "eager" variant adds
    the usual hints (select_related / prefetch_related / selectinload: one query per relation);
  * revenue analytics is aggregated live from the order lines (an ORM has no projection);
    Strata reads the projection as of the last `strata refresh`, so it trades freshness for
    speed, and the table says so;
  * the inventory's "in orders" column is counted live from the open orders; Strata reads the
    counts that triggers keep current on every order write (orders.tb_product_open_orders):
    as fresh as the live count, and the triggers fire for the ORM's writes too, so both
    clients' writes pay for them;
  * writes validate the same input contract in Python, check the same permission with one
    query, resolve references, lock the same rows in the same order (SELECT … FOR UPDATE,
    products in pk order), take the same gapless identifier, write the same rows (so the same
    ledger triggers fire) and the same domain events (audit.log_event), in one transaction,
    and answer with the same order document. Each write checks that both clients produced the
    same number of ledger events per operation.
The client is psycopg with prepared statements and no model layer, so it is faster than a
real ORM (no per-row object construction): the ratios are conservative.

Each measurement alternates Strata and the two ORM variants in short rounds, each round
starting with the next client: reads for at least a fixed time over whole cycles of their
inputs, writes for a fixed number of orders (create, then pay those orders, then cancel them: a
refund that releases the stock), 25 per client and round. A busy moment of the machine
(autovacuum, the host) then falls on every client alike instead of on one client's whole batch.
The reads of every link run first, on the seeded data, then the writes.
Ratio = Strata ops/s ÷ ORM ops/s.

Sealing the ledger is measured beside the ratio, not in it. Each timed batch is followed by a
seal of exactly the events it wrote (audit.seal(), checked against the events the batch added),
and its time per operation is printed next to the ratio. The clients' commits do not seal
(strata.audit_seal_on_commit off). A commit seals what everyone committed in the last 500 ms, so
in these interleaved rounds Strata's short batch nearly always sealed the ORM's events: in run
49, through the link, Strata's 400 cancellations sealed 1,962 events and the lazy ORM's 414,
each having written 1,200. Timing a seal after each batch instead would charge every client a
block (about 1 ms of fixed cost) per 25 writes; a session's 500 ms interval cuts one per about
200 cancellations at Strata's pace, so that would charge the fastest client for blocks it does
not cut outside the bench. The work of sealing is the same per event whichever client wrote it,
and both write as many events per operation (checked). Leaving it out still favours the faster
client a little: at the 500 ms interval's pace, a cancellation's three events cost about 30 µs
to seal for Strata and 50 µs for the ORM, which would take a 5.01× to about 4.97×.

The link (strata.bench.link) is calibrated to add its round trip before the first round, and
measured and trimmed again before every round, because the relay's own cost moves with the
machine's speed.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal

import psycopg
from psycopg.rows import dict_row

from strata import seed as seeding
from strata.bench import Bench, Metric, Scenario, register
from strata.bench.link import DelayedLink, Upstream, url_through
from strata.errors import ConfigurationError

TENANT = "bench-orders"
ADMIN = "bench@orders.example"
OTHER = "bench-other"

# The figures published for this design (Strata ÷ ORM); the goal is to beat each.
PUBLISHED = {
    "order summary page (50 rows)": 22.5,
    "customer history": 15.0,
    "inventory check (20 products)": 40.0,
    "revenue analytics (top 20)": 100.0,
    "create order": 3.2,
    "process payment": 4.3,
    "cancel order": 5.0,
}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def _iso(value: datetime | None) -> str | None:
    """A time as the views render it: ISO 8601 in UTC with microseconds."""
    return None if value is None else value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(value: Decimal | None) -> float | None:
    """numeric as the views render it in JSON, read back by json.loads: a number."""
    return None if value is None else float(value)


class Refused(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


# --- the Strata client --------------------------------------------------------------------------

class StrataClient:
    """One round trip per operation: a view SELECT or an app function call."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.cur = conn.cursor(row_factory=dict_row)

    def _page(self, rows: str, order: str, params=()) -> list:
        """A page of a view's documents as one JSON array, the way a GraphQL-style API hands a
        list to its client: one row to read instead of one per document. json_agg, not
        jsonb_agg: the array is only sent as text, and jsonb_agg would take every document
        apart into a new jsonb first (json_agg reads a summary page about 15% faster)."""
        return self.cur.execute(f"SELECT coalesce(pg_catalog.json_agg(p.data ORDER BY {order}), '[]') AS data"
                                f" FROM ({rows}) AS p", params).fetchone()["data"]

    def summary_page(self, _arg) -> list:
        return self._page("SELECT data, created_at FROM app.v_orders_summary ORDER BY created_at DESC LIMIT 50",
                          "p.created_at DESC")

    def customer_history(self, customer: str) -> dict:
        return self.cur.execute("SELECT data FROM app.v_customer_orders WHERE identifier = %s", (customer,)).fetchone()["data"]

    def inventory(self, offset: int) -> list:
        return self._page("SELECT data, sku FROM app.v_product_inventory ORDER BY sku LIMIT 20 OFFSET %s", "p.sku", (offset,))

    def revenue(self, _arg) -> list:
        return self._page("SELECT data, revenue, sku FROM app.v_revenue_by_product ORDER BY revenue DESC, sku LIMIT 20",
                          "p.revenue DESC, p.sku")

    def _call(self, function: str, payload: dict, expected: str) -> dict:
        row = self.cur.execute(f"SELECT status, message, identifier, version, object_data FROM app.{function}(%s)",
                               (json.dumps(payload),)).fetchone()
        if row["status"] != expected:
            raise Refused(row["status"], row["message"])
        return row

    def create_order(self, payload: dict) -> dict:
        return self._call("create_order", payload, "created")

    def process_payment(self, payload: dict) -> dict:
        return self._call("process_payment", payload, "updated")

    def cancel_order(self, payload: dict) -> dict:
        return self._call("cancel_order", payload, "updated")


# --- the ORM-style client -----------------------------------------------------------------------

PERMISSION = """
SELECT EXISTS (
    SELECT 1
      FROM tenancy.tb_user AS u
      JOIN tenancy.tb_user_role AS ur ON ur.tenant_id = u.tenant_id AND ur.fk_user = u.pk_user
      JOIN tenancy.tb_role AS r ON r.tenant_id = ur.tenant_id AND r.pk_role = ur.fk_role
     WHERE u.tenant_id = %(tenant)s AND u.id = %(actor)s AND u.status = 'active'
       AND EXISTS (SELECT 1 FROM tenancy.tb_organization AS o WHERE o.tenant_id = u.tenant_id AND o.status = 'active')
       AND (r.grants_all OR EXISTS (SELECT 1 FROM tenancy.tb_role_permission AS rp
                                     WHERE rp.tenant_id = r.tenant_id AND rp.fk_role = r.pk_role
                                       AND rp.permission = %(permission)s)))
"""
ORDER_COLUMNS = ("o.pk_order, o.id, o.identifier, o.fk_customer, o.status, o.item_count, o.total_amount, o.refund_amount,"
                 " o.notes, o.cancel_reason, o.paid_at, o.shipped_at, o.delivered_at, o.cancelled_at, o.version,"
                 " o.created_at, o.updated_at")
CUSTOMER_COLUMNS = "c.pk_customer, c.id, c.identifier, c.name, c.email, c.phone"
PRODUCT_COLUMNS = ("p.pk_product, p.id, p.identifier, p.sku, p.name, p.price, p.stock_on_hand, p.stock_reserved,"
                   " p.low_stock_threshold, p.version")

ITEMS = "SELECT * FROM orders.tb_order_item AS it WHERE it.tenant_id = %s AND it.fk_order"


def _items(lines: list[dict], products: dict) -> list[dict]:
    """An order's lines as the views render them (orders.v_order_line)."""
    return [{"lineNumber": it["line_number"], "productId": str(products[it["fk_product"]]["id"]),
             "sku": products[it["fk_product"]]["sku"], "productName": products[it["fk_product"]]["name"],
             "quantity": it["quantity"], "unitPrice": _num(it["unit_price"]), "lineTotal": _num(it["line_total"])}
            for it in lines]


class OrmClient:
    """An ORM's query pattern over the same tables, written as the owner. `eager` adds the
    loading hints a careful developer writes; without them relations load lazily."""

    def __init__(self, conn: psycopg.Connection, tenant_id, actor_id, *, eager: bool):
        self.conn, self.tenant, self.actor, self.eager = conn, tenant_id, actor_id, eager
        self.cur = conn.cursor(row_factory=dict_row)
        self.round_trips = 0

    # Every statement is a round trip; so are BEGIN and COMMIT.
    def _all(self, query: str, params=None, prepare: bool | None = None) -> list[dict]:
        self.round_trips += 1
        return self.cur.execute(query, params, prepare=prepare).fetchall()

    def _one(self, query: str, params=None, prepare: bool | None = None) -> dict | None:
        self.round_trips += 1
        return self.cur.execute(query, params, prepare=prepare).fetchone()

    def _transaction(self):
        self.round_trips += 2
        return self.conn.transaction()

    # -- relations, loaded lazily (identity map) or in one query per relation (eager)

    def _load(self, relation: str, alias: str, columns: str, pk: str, pks: list[int], cache: dict) -> dict:
        """Rows of orders.<relation> by pk into cache (pk -> row), loading only those not in it."""
        missing = [key for key in dict.fromkeys(pks) if key not in cache]
        base = f"SELECT {columns} FROM orders.{relation} AS {alias} WHERE {alias}.tenant_id = %s AND {alias}.{pk}"
        if missing and self.eager:
            for row in self._all(f"{base} = ANY(%s)", (self.tenant, missing)):
                cache[row[pk]] = row
        else:
            for key in missing:
                cache[key] = self._one(f"{base} = %s", (self.tenant, key))
        return cache

    def _customers(self, pks: list[int], cache: dict) -> dict:
        return self._load("tb_customer", "c", CUSTOMER_COLUMNS, "pk_customer", pks, cache)

    def _products(self, pks: list[int], cache: dict) -> dict:
        return self._load("tb_product", "p", PRODUCT_COLUMNS, "pk_product", pks, cache)

    # -- reads

    def summary_page(self, _arg) -> list:
        orders = self._all(f"SELECT {ORDER_COLUMNS} FROM orders.tb_order AS o WHERE o.tenant_id = %s"
                           " ORDER BY o.created_at DESC, o.pk_order DESC LIMIT 50", (self.tenant,))
        customers = self._customers([o["fk_customer"] for o in orders], {})
        return [{"id": str(o["id"]), "orderNumber": o["identifier"], "customerId": str(customers[o["fk_customer"]]["id"]),
                 "customerName": customers[o["fk_customer"]]["name"], "itemCount": o["item_count"],
                 "totalAmount": _num(o["total_amount"]), "status": o["status"], "createdAt": _iso(o["created_at"]),
                 "version": o["version"]} for o in orders]

    def customer_history(self, customer: str) -> dict:
        c = self._one(f"SELECT {CUSTOMER_COLUMNS} FROM orders.tb_customer AS c WHERE c.tenant_id = %s AND c.identifier = %s",
                      (self.tenant, customer))
        orders = self._all(f"SELECT {ORDER_COLUMNS} FROM orders.tb_order AS o WHERE o.tenant_id = %s AND o.fk_customer = %s"
                           " ORDER BY o.created_at DESC, o.pk_order DESC", (self.tenant, c["pk_customer"]))
        lines: dict[int, list[dict]] = {o["pk_order"]: [] for o in orders}
        if self.eager:  # prefetch_related('orders__items')
            for it in self._all(f"{ITEMS} = ANY(%s) ORDER BY it.fk_order, it.line_number", (self.tenant, list(lines))):
                lines[it["fk_order"]].append(it)
        else:  # order.items.all() for each order
            for pk in lines:
                lines[pk] = self._all(f"{ITEMS} = %s ORDER BY it.line_number", (self.tenant, pk))
        products = self._products([it["fk_product"] for items in lines.values() for it in items], {})
        spent = sum((o["total_amount"] for o in orders if o["status"] in ("paid", "shipped", "delivered")), Decimal(0))
        return {"id": str(c["id"]), "identifier": c["identifier"], "name": c["name"], "email": c["email"],
                "phone": c["phone"], "orderCount": len(orders), "totalSpent": _num(spent),
                "lastOrderAt": _iso(orders[0]["created_at"]) if orders else None,
                "orders": [{"id": str(o["id"]), "orderNumber": o["identifier"], "status": o["status"],
                            "itemCount": o["item_count"], "totalAmount": _num(o["total_amount"]),
                            "createdAt": _iso(o["created_at"]), "items": _items(lines[o["pk_order"]], products)}
                           for o in orders]}

    def inventory(self, offset: int) -> list:
        products = self._all(f"SELECT {PRODUCT_COLUMNS} FROM orders.tb_product AS p WHERE p.tenant_id = %s"
                             " ORDER BY p.sku LIMIT 20 OFFSET %s", (self.tenant, offset))
        open_query = ("SELECT it.fk_product, count(DISTINCT it.fk_order) AS n"
                      "  FROM orders.tb_order AS o"
                      "  JOIN orders.tb_order_item AS it ON it.tenant_id = o.tenant_id AND it.fk_order = o.pk_order"
                      " WHERE o.tenant_id = %s AND o.status IN ('pending', 'paid') AND it.fk_product {}"
                      " GROUP BY it.fk_product")
        # The count is not prepared, as Django sends it: prepared, PostgreSQL may settle on a
        # generic plan for any product that takes 7× as long (a hash join over every open
        # order), which would flatter Strata in some runs and not in others.
        if self.eager:  # annotate() over the open orders, for the page's products
            counts = {r["fk_product"]: r["n"] for r in self._all(open_query.format("= ANY(%s)"),
                                                                 (self.tenant, [p["pk_product"] for p in products]),
                                                                 prepare=False)}
        else:  # product.order_items.filter(order__status__in=OPEN).values('order').distinct().count()
            counts = {}
            for p in products:
                row = self._one(open_query.format("= %s"), (self.tenant, p["pk_product"]), prepare=False)
                counts[p["pk_product"]] = row["n"] if row else 0
        result = []
        for p in products:
            available = p["stock_on_hand"] - p["stock_reserved"]
            result.append({"id": str(p["id"]), "sku": p["sku"], "name": p["name"], "price": _num(p["price"]),
                           "onHand": p["stock_on_hand"], "reserved": p["stock_reserved"], "available": available,
                           "inOrders": counts.get(p["pk_product"], 0), "lowStock": available <= p["low_stock_threshold"],
                           "lowStockThreshold": p["low_stock_threshold"], "version": p["version"]})
        return result

    def revenue(self, _arg) -> list:
        rows = self._all(
            "SELECT it.fk_product, sum(it.quantity) AS units, count(DISTINCT it.fk_order) AS orders,"
            "       sum(it.line_total) AS revenue"
            "  FROM orders.tb_order_item AS it"
            "  JOIN orders.tb_order AS o ON o.tenant_id = it.tenant_id AND o.pk_order = it.fk_order"
            " WHERE it.tenant_id = %s AND o.status IN ('paid', 'shipped', 'delivered')"
            " GROUP BY it.fk_product ORDER BY revenue DESC LIMIT 20", (self.tenant,))
        products = self._products([r["fk_product"] for r in rows], {})
        return [{"id": str(products[r["fk_product"]]["id"]), "sku": products[r["fk_product"]]["sku"],
                 "name": products[r["fk_product"]]["name"], "unitsSold": int(r["units"]), "orderCount": r["orders"],
                 "revenue": _num(r["revenue"])} for r in rows]

    # -- writes

    def _allowed(self, permission: str) -> None:
        if not self._one(PERMISSION, {"tenant": self.tenant, "actor": self.actor, "permission": permission})["exists"]:
            raise Refused(f"forbidden:{permission}", f"The acting user lacks the {permission} permission.")

    def _next_identifier(self, scope: str, prefix: str) -> str:
        n = self._one("INSERT INTO tenancy.tb_identifier_counter AS c (tenant_id, scope, last_value) VALUES (%s, %s, 1)"
                      " ON CONFLICT (tenant_id, scope) DO UPDATE SET last_value = c.last_value + 1"
                      " RETURNING c.last_value", (self.tenant, scope))["last_value"]
        return f"{prefix}{n:06d}"

    def _lock_order(self, ref: str) -> tuple[dict, dict | None]:
        """The order, locked; with its customer when loading eagerly (else None)."""
        by = "o.id = %s::uuid" if UUID_RE.match(ref) else "o.identifier = %s"
        customer = None
        if self.eager:  # select_related('customer').select_for_update(of=('self',))
            row = self._one(f"SELECT {ORDER_COLUMNS}, to_jsonb(c) AS customer FROM orders.tb_order AS o"
                            " JOIN orders.tb_customer AS c ON c.tenant_id = o.tenant_id AND c.pk_customer = o.fk_customer"
                            f" WHERE o.tenant_id = %s AND {by} FOR UPDATE OF o", (self.tenant, ref))
            if row is not None:
                customer = row.pop("customer")
        else:
            row = self._one(f"SELECT {ORDER_COLUMNS} FROM orders.tb_order AS o WHERE o.tenant_id = %s AND {by}"
                            " FOR UPDATE", (self.tenant, ref))
        if row is None:
            raise Refused("not_found:order", f"No order {ref} in this organization.")
        return row, customer

    def _order_document(self, order: dict, customer: dict, items: list[dict], products: dict, payments: list[dict]) -> dict:
        return {
            "id": str(order["id"]), "orderNumber": order["identifier"], "status": order["status"],
            "customer": {"id": str(customer["id"]), "identifier": customer["identifier"], "name": customer["name"],
                         "email": customer["email"]},
            "items": _items(items, products),
            "payments": [{"id": str(pm["id"]), "identifier": pm["identifier"], "amount": _num(pm["amount"]),
                          "method": pm["method"], "status": pm["status"], "createdAt": _iso(pm["created_at"])}
                         for pm in payments],
            "itemCount": order["item_count"], "totalAmount": _num(order["total_amount"]),
            "refundAmount": _num(order["refund_amount"]), "notes": order["notes"], "cancelReason": order["cancel_reason"],
            "paidAt": _iso(order["paid_at"]), "shippedAt": _iso(order["shipped_at"]),
            "deliveredAt": _iso(order["delivered_at"]), "cancelledAt": _iso(order["cancelled_at"]),
            "createdAt": _iso(order["created_at"]), "updatedAt": _iso(order["updated_at"]), "version": order["version"],
        }

    def _details(self, order: dict, customer: dict | None, products: dict) -> dict:
        """The rest of the order document: customer, items (with products) and payments."""
        if customer is None:
            customer = self._customers([order["fk_customer"]], {})[order["fk_customer"]]
        if self.eager:  # prefetch_related('items__product')
            items = self._all("SELECT it.line_number, it.fk_product, it.quantity, it.unit_price, it.line_total,"
                              f" {PRODUCT_COLUMNS} FROM orders.tb_order_item AS it"
                              " JOIN orders.tb_product AS p ON p.tenant_id = it.tenant_id AND p.pk_product = it.fk_product"
                              " WHERE it.tenant_id = %s AND it.fk_order = %s ORDER BY it.line_number",
                              (self.tenant, order["pk_order"]))
            for it in items:
                products.setdefault(it["fk_product"], it)
        else:
            items = self._all(f"{ITEMS} = %s ORDER BY it.line_number", (self.tenant, order["pk_order"]))
            self._products([it["fk_product"] for it in items], products)
        payments = self._all("SELECT * FROM orders.tb_payment AS pm WHERE pm.tenant_id = %s AND pm.fk_order = %s"
                             " ORDER BY pm.pk_payment", (self.tenant, order["pk_order"]))
        return self._order_document(order, customer, items, products, payments)

    def create_order(self, payload: dict) -> dict:
        _validate(payload, CREATE_ORDER)
        with self._transaction():
            self._allowed("orders.create")
            if payload.get("idempotency_key") is not None:
                existing = self._one("SELECT o.id FROM orders.tb_order AS o WHERE o.tenant_id = %s AND o.idempotency_key = %s",
                                     (self.tenant, payload["idempotency_key"]))
                if existing:
                    raise Refused("noop:already_exists", "This idempotency key already created an order.")
            ref = payload["customer"]
            customer = self._one(f"SELECT {CUSTOMER_COLUMNS} FROM orders.tb_customer AS c WHERE c.tenant_id = %s AND "
                                 + ("c.id = %s::uuid" if UUID_RE.match(ref) else "c.identifier = %s"), (self.tenant, ref))
            if customer is None:
                raise Refused("not_found:customer", f"No customer {ref} in this organization.")
            wanted: dict[str, int] = {}
            for item in payload["items"]:
                sku = item["product"].upper()
                wanted[sku] = wanted.get(sku, 0) + item["quantity"]
            locked = self._all(f"SELECT {PRODUCT_COLUMNS} FROM orders.tb_product AS p"
                               " WHERE p.tenant_id = %s AND p.identifier = ANY(%s) ORDER BY p.pk_product FOR UPDATE",
                               (self.tenant, list(wanted)))
            by_sku = {p["sku"]: p for p in locked}
            missing = [sku for sku in wanted if sku not in by_sku]
            if missing:
                raise Refused("not_found:product", f"No product {missing[0]} in this organization.")
            short = [sku for sku, q in wanted.items() if by_sku[sku]["stock_on_hand"] - by_sku[sku]["stock_reserved"] < q]
            if short:
                raise Refused("conflict:insufficient_stock", f"{short[0]} is short.")
            for sku, quantity in wanted.items():  # product.stock_reserved += q; product.save(update_fields=…)
                self._one("UPDATE orders.tb_product SET stock_reserved = %s WHERE tenant_id = %s AND pk_product = %s"
                          " RETURNING version", (by_sku[sku]["stock_reserved"] + quantity, self.tenant, by_sku[sku]["pk_product"]))
            lines = [(n, by_sku[sku], q) for n, (sku, q) in enumerate(wanted.items(), start=1)]
            units = sum(q for _, _, q in lines)
            total = sum((p["price"] * q for _, p, q in lines), Decimal(0))
            if total > LARGEST_PAYMENT:  # as core.create_order: every order can be paid in full
                raise Refused("validation:out_of_range", f"An order may total at most {LARGEST_PAYMENT}.")
            identifier = self._next_identifier("order", "ORD-")
            order = self._one(
                "INSERT INTO orders.tb_order AS o (tenant_id, identifier, fk_customer, item_count, total_amount, notes, idempotency_key)"
                f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {ORDER_COLUMNS}",
                (self.tenant, identifier, customer["pk_customer"], units, total, payload.get("notes"),
                 payload.get("idempotency_key")))
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(lines))
            params = [v for n, p, q in lines for v in (self.tenant, f"{identifier}-{n}", order["pk_order"], p["pk_product"],
                                                        n, q, p["price"], p["price"] * q)]
            items = self._all("INSERT INTO orders.tb_order_item (tenant_id, identifier, fk_order, fk_product, line_number,"
                              f" quantity, unit_price, line_total) VALUES {values} RETURNING *", params)
        return {"status": "created", "identifier": identifier, "version": order["version"],
                "object_data": self._order_document(order, customer, items, {p["pk_product"]: p for p in locked}, [])}

    def process_payment(self, payload: dict) -> dict:
        _validate(payload, PROCESS_PAYMENT)
        with self._transaction():
            self._allowed("orders.pay")
            order, customer = self._lock_order(payload["order"])
            if payload["version"] != order["version"]:
                raise Refused("conflict:stale_version", "stale version")
            if order["status"] != "pending":
                raise Refused("noop:already_paid" if order["status"] in ("paid", "shipped", "delivered")
                              else "conflict:invalid_transition", order["status"])
            if Decimal(str(payload["amount"])) != order["total_amount"]:
                raise Refused("conflict:amount_mismatch", "amount must equal the order total")
            if order["total_amount"] > 0:  # a free order is paid without a payment row
                self._one("INSERT INTO orders.tb_payment (tenant_id, identifier, fk_order, amount, method)"
                          " VALUES (%s, %s, %s, %s, %s) RETURNING id", (self.tenant, self._next_identifier("payment", "PAY-"),
                                                                       order["pk_order"], order["total_amount"], payload["method"]))
            order.update(self._one("UPDATE orders.tb_order SET status = 'paid', paid_at = now()"
                                   " WHERE tenant_id = %s AND pk_order = %s RETURNING status, paid_at, version, updated_at",
                                   (self.tenant, order["pk_order"])))
            self._one("SELECT audit.log_event('order.paid', 'order', %s, %s, NULL, %s)",
                      (order["id"], order["identifier"], json.dumps({"amount": payload["amount"], "method": payload["method"]})))
            document = self._details(order, customer, {})
        return {"status": "updated", "identifier": order["identifier"], "version": order["version"],
                "object_data": document,
                "updated_fields": ["paidAt", "payments", "status"] if order["total_amount"] > 0 else ["paidAt", "status"]}

    def cancel_order(self, payload: dict) -> dict:
        _validate(payload, CANCEL_ORDER)
        with self._transaction():
            self._allowed("orders.cancel")
            order, customer = self._lock_order(payload["order"])
            if order["status"] == "cancelled":  # whatever the version, as core.cancel_order
                raise Refused("noop:already_cancelled", "already cancelled")
            if payload.get("version") is not None and payload["version"] != order["version"]:
                raise Refused("conflict:stale_version", "stale version")
            if order["status"] in ("shipped", "delivered"):
                raise Refused("conflict:already_shipped", order["status"])
            previous = order["status"]
            items = self._all(f"{ITEMS} = %s ORDER BY it.line_number", (self.tenant, order["pk_order"]))
            units: dict[int, int] = {}
            for it in items:
                units[it["fk_product"]] = units.get(it["fk_product"], 0) + it["quantity"]
            products = {p["pk_product"]: p for p in self._all(
                f"SELECT {PRODUCT_COLUMNS} FROM orders.tb_product AS p WHERE p.tenant_id = %s AND p.pk_product = ANY(%s)"
                " ORDER BY p.pk_product FOR UPDATE", (self.tenant, sorted(units)))}
            for pk, quantity in units.items():
                self._one("UPDATE orders.tb_product SET stock_reserved = %s WHERE tenant_id = %s AND pk_product = %s"
                          " RETURNING version", (products[pk]["stock_reserved"] - quantity, self.tenant, pk))
            payments = self._all("SELECT * FROM orders.tb_payment AS pm WHERE pm.tenant_id = %s AND pm.fk_order = %s"
                                 " ORDER BY pm.pk_payment", (self.tenant, order["pk_order"]))
            for pm in payments:
                if pm["status"] == "captured":  # payment.status = 'refunded'; payment.save()
                    pm.update(self._one("UPDATE orders.tb_payment SET status = 'refunded', refunded_at = now()"
                                        " WHERE tenant_id = %s AND pk_payment = %s RETURNING status, refunded_at, version",
                                        (self.tenant, pm["pk_payment"])))
            refund = sum((pm["amount"] for pm in payments if pm["status"] == "refunded"), Decimal(0))
            order.update(self._one(
                "UPDATE orders.tb_order SET status = 'cancelled', cancel_reason = %s, cancelled_at = now(), refund_amount = %s"
                " WHERE tenant_id = %s AND pk_order = %s"
                " RETURNING status, cancel_reason, cancelled_at, refund_amount, version, updated_at",
                (payload["reason"], refund if refund > 0 else None, self.tenant, order["pk_order"])))
            self._one("SELECT audit.log_event('order.cancelled', 'order', %s, %s, NULL, %s)",
                      (order["id"], order["identifier"],
                       json.dumps({"reason": payload["reason"], "refund": _num(refund), "previousStatus": previous})))
            if customer is None:
                customer = self._customers([order["fk_customer"]], {})[order["fk_customer"]]
            document = self._order_document(order, customer, items, products, payments)
        return {"status": "updated", "identifier": order["identifier"], "version": order["version"],
                "object_data": document, "extra_metadata": {"refundAmount": _num(refund)}}


# The largest payment (process_payment's contract), and so the most an order may total
# (core.max_order_total()).
LARGEST_PAYMENT = Decimal("1000000000.00")

# The input contracts, as the app functions declare them (app.describe), checked in Python.
CREATE_ORDER = {"customer": ("reference", True), "items": ("items", True), "idempotency_key": ("key:200", False),
                "notes": ("string:2000", False)}
PROCESS_PAYMENT = {"order": ("reference", True), "amount": ("amount", True), "method": ("method", True),
                   "version": ("version", True)}
CANCEL_ORDER = {"order": ("reference", True), "reason": ("string:500", True), "version": ("version", False)}


def _whole(value) -> bool:
    """A whole number, 2.0 included, as the contracts' integer fields take it."""
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())


def _validate(payload: dict, contract: dict) -> None:
    errors = []
    if not isinstance(payload, dict):
        raise Refused("validation:not_an_object", "input must be an object")
    errors += [f"{k}: unknown field" for k in payload if k not in contract]
    for name, (kind, required) in contract.items():
        value = payload.get(name)
        if value is None:
            if required:
                errors.append(f"{name}: required")
            continue
        if kind == "reference":
            ok = isinstance(value, str) and 0 < len(value) <= 200
        elif kind.startswith("string:"):
            ok = isinstance(value, str) and len(value.strip()) <= int(kind.split(":")[1])
        elif kind.startswith("key:"):  # a string that may not be empty once trimmed
            ok = isinstance(value, str) and 0 < len(value.strip()) <= int(kind.split(":")[1])
        elif kind == "version":
            ok = _whole(value) and value >= 1
        elif kind == "method":
            ok = value in ("card", "bank_transfer", "cash", "wallet")
        elif kind == "amount":
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= LARGEST_PAYMENT
                  and Decimal(str(value)).as_tuple().exponent >= -2)
        else:  # items
            ok = isinstance(value, list) and 1 <= len(value) <= 100 and all(
                isinstance(i, dict) and set(i) <= {"product", "quantity"} and isinstance(i.get("product"), str)
                and 0 < len(i["product"]) <= 200 and _whole(i.get("quantity")) and 1 <= i["quantity"] <= 10000
                for i in value)
        if not ok:
            errors.append(f"{name}: invalid")
    if errors:
        raise Refused("validation:invalid_input", "; ".join(errors))


# --- the run ------------------------------------------------------------------------------------

def _client_connection(bench: Bench, url: str, role: str) -> psycopg.Connection:
    conn = bench.connect(url)
    try:
        conn.execute(f"SET ROLE {role}")
        conn.execute("SET strata.audit_seal_on_commit = off")  # the bench seals after each batch (above)
    except psycopg.errors.InsufficientPrivilege as err:
        conn.close()
        raise ConfigurationError(f"the orders bench acts as {role} (SET ROLE): this login needs to be a member of it.") from err
    conn.execute("SELECT app.set_context(%s, %s, false)", (TENANT, ADMIN))
    return conn


def _in_turn(clients: dict, turn: int) -> list:
    """The clients in the order of this round: each round starts with the next one, so none
    always runs first (on fresh row versions) or last."""
    order = list(clients.items())
    return order[turn % len(order):] + order[:turn % len(order)]


def _timed_for(fn: Callable, args: list, seconds: float) -> tuple[int, float]:
    """Runs fn over args in whole cycles, for at least `seconds` and 3 calls; (calls, elapsed).
    Whole cycles, so every client reads the same mix of inputs: for the ORM an inventory page
    of popular products costs several times one of rarely ordered ones."""
    count, started = 0, time.perf_counter()
    while True:
        fn(args[count % len(args)])
        count += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and count >= 3 and count % len(args) == 0:
            return count, elapsed


def _events(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT pg_catalog.count(*) FROM audit.events").fetchone()[0]


class Measurement:
    """What one link measured: per (operation, client) calls and seconds, round trips per
    call, and ledger events per write."""

    def __init__(self, label: str):
        self.label = label
        self.round_trip = 0.0
        self.timings: dict[tuple[str, str], list[float]] = {}
        self.trips: dict[tuple[str, str], float] = {}
        self.events: dict[tuple[str, str], list] = {}  # [events written, operations, seconds sealing them]

    def add(self, key: tuple[str, str], calls: int, seconds: float, trips: float) -> None:
        t = self.timings.setdefault(key, [0, 0.0])
        t[0] += calls
        t[1] += seconds
        self.trips[key] = trips

    def rate(self, name: str, side: str) -> float:
        calls, seconds = self.timings[(name, side)]
        return calls / seconds


@contextlib.contextmanager
def _clients(bench: Bench, url: str) -> Iterator[dict]:
    """Strata (as strata_app) and both ORM variants (as strata_owner, one connection) over one
    URL, under the bench tenant's context."""
    strata_conn = _client_connection(bench, url, "strata_app")
    orm_conn = _client_connection(bench, url, "strata_owner")
    try:
        tenant_id, actor_id = orm_conn.execute("SELECT tenant_id, actor_id FROM app.current_context()").fetchone()
        yield {"strata": StrataClient(strata_conn),
               "orm": OrmClient(orm_conn, tenant_id, actor_id, eager=False),
               "orm_eager": OrmClient(orm_conn, tenant_id, actor_id, eager=True)}
    finally:
        strata_conn.close()
        orm_conn.close()


def _measure_reads(bench: Bench, url: str, result: Measurement, fixture: dict, between_rounds: Callable[[], object]) -> None:
    """Every read, Strata and both ORM variants alternating in rounds over one URL, and the
    URL's round trip, added to result. between_rounds() runs before each round."""
    quick = bench.options.quick
    read_seconds = 0.15 if quick else 0.75
    read_rounds = 1 if quick else 4
    reads = [("order summary page (50 rows)", "summary_page", [None]),
             ("customer history", "customer_history", fixture["history_args"]),
             ("inventory check (20 products)", "inventory", fixture["page_args"]),
             ("revenue analytics (top 20)", "revenue", [None])]
    with _clients(bench, url) as clients:
        for name, method, args in reads:
            for side, client in clients.items():  # warm up: prepared statements, caches
                for a in args[:3]:
                    getattr(client, method)(a)
            for turn in range(read_rounds):
                between_rounds()
                for side, client in _in_turn(clients, turn):
                    before = getattr(client, "round_trips", 0)
                    count, elapsed = _timed_for(getattr(client, method), args, read_seconds)
                    trips = (getattr(client, "round_trips", count) - before) / count if side != "strata" else 1
                    result.add((name, side), count, elapsed, trips)
        result.round_trip = _round_trip_seconds(clients["strata"].conn)


def _measure_writes(bench: Bench, url: str, result: Measurement, fixture: dict, rng: random.Random,
                    between_rounds: Callable[[], object]) -> None:
    """Every write, Strata and both ORM variants alternating in rounds over one URL, added to
    result. between_rounds() runs before each round."""
    write_rounds, writes_per_round = fixture["write_rounds"], fixture["writes_per_round"]
    with _clients(bench, url) as clients:
        # Writes: each client creates its own orders, pays them, then cancels them (refunds).
        customers, hot = fixture["customers"], fixture["hot"]
        # Counts and seals the ledger's events: as strata_owner, who may run audit.seal().
        with contextlib.closing(_client_connection(bench, bench.url, "strata_owner")) as counter:
            events = _events(counter)  # counted once after each batch: between two counts only that batch writes events
            # One untimed round of 3 orders first: every client compiles its plans.
            for index, n in enumerate([3] + [writes_per_round] * write_rounds):
                # The same orders for every client, each with its own idempotency keys.
                shapes = [{"customer": rng.choice(customers),
                           "items": [{"product": sku, "quantity": rng.randint(1, 2)}
                                     for sku in rng.sample(hot, k=rng.choice((1, 2, 2, 3)))]}
                          for _ in range(n)]
                made: dict[str, list[dict]] = {
                    side: [{**shape, "idempotency_key": f"bench-{side}-{time.time_ns()}-{i}"} for i, shape in enumerate(shapes)]
                    for side in clients}
                timed = index > 0
                between_rounds()
                for name, method, build in (
                        ("create order", "create_order", None),
                        ("process payment", "process_payment",
                         lambda r: {"order": r["identifier"], "amount": r["object_data"]["totalAmount"],
                                    "method": "card", "version": r["version"]}),
                        ("cancel order", "cancel_order",
                         lambda r: {"order": r["identifier"], "reason": "Benchmark refund", "version": r["version"]})):
                    for side, client in _in_turn(clients, index):
                        inputs = made[side] if build is None else [build(r) for r in made[side]]
                        before_trips = getattr(client, "round_trips", 0)
                        started = time.perf_counter()
                        results = [getattr(client, method)(payload) for payload in inputs]
                        elapsed = time.perf_counter() - started
                        seal_started = time.perf_counter()
                        sealed = counter.execute("SELECT events FROM audit.seal()").fetchone()[0]
                        sealing = time.perf_counter() - seal_started
                        made[side] = results
                        counted = _events(counter)
                        written, events = counted - events, counted
                        if not timed:
                            continue
                        if sealed != written:
                            raise RuntimeError(f"{name}: the {side} client's batch wrote {written} ledger events but its seal "
                                               f"held {sealed}; something else wrote or sealed events during the bench")
                        e = result.events.setdefault((name, side), [0, 0, 0.0])
                        e[0] += written
                        e[1] += len(inputs)
                        e[2] += sealing
                        trips = ((getattr(client, "round_trips", 0) - before_trips) / len(inputs)
                                 if side != "strata" else 1)
                        result.add((name, side), len(inputs), elapsed, trips)


def run(bench: Bench) -> list[Metric]:
    quick = bench.options.quick
    size = 1_000 if quick else 100_000
    # 400 orders per client and link, in 16 rounds of 25.
    write_rounds, writes_per_round = (1, 5) if quick else (16, 25)
    link_rtt = bench.options.link_rtt

    # The data: the measured tenant, and another one so RLS has something to filter out.
    plan = [seeding.TenantSeed(slug=TENANT, name="Orders Bench", admin=ADMIN, orders_planned=size),
            seeding.TenantSeed(slug=OTHER, name="Other Tenant", admin="bench@other.example", orders_planned=size)]
    with bench.connect() as admin:
        with_ledger = not seeding.can_bulk_load_without_triggers(admin)
    seeded = seeding.seed_tenants(bench.url, plan, mode="bulk", with_ledger=with_ledger)
    links = [("localhost", 0.0)] + ([(f"+{link_rtt * 1000:g} ms link", link_rtt)] if link_rtt > 0 else [])

    rng = random.Random(7)
    with bench.connect() as admin, admin.transaction():
        admin.execute("SELECT core.refresh_revenue()")
        tenant_id = admin.execute("SELECT id FROM tenancy.tb_organization WHERE slug = %s", (TENANT,)).fetchone()[0]
        customers = [r[0] for r in admin.execute("SELECT identifier FROM orders.tb_customer WHERE tenant_id = %s"
                                                 " ORDER BY pk_customer", (tenant_id,))]
        skus = [r[0] for r in admin.execute("SELECT sku FROM orders.tb_product WHERE tenant_id = %s ORDER BY sku",
                                            (tenant_id,))]
        # Enough stock on the products the writes order for every client, round and link.
        admin.execute("SELECT app.set_context(%s, %s)", (TENANT, ADMIN))
        for sku in skus[:20]:
            row = admin.execute("SELECT status, message FROM app.restock_product(%s)",
                                (json.dumps({"product": sku, "quantity": 100 * writes_per_round * write_rounds * len(links)}),)
                                ).fetchone()
            if row[0] != "updated":
                raise RuntimeError(f"restocking {sku} for the bench failed: {row[1]}")
    fixture = {"customers": customers, "hot": skus[:20], "write_rounds": write_rounds, "writes_per_round": writes_per_round,
               "history_args": rng.sample(customers, k=min(len(customers), 100)),
               "page_args": list(range(0, max(len(skus) - 20, 0) + 1, 20)) or [0]}

    measured = [Measurement(label) for label, _ in links]
    held: dict[str, DelayedLink] = {}  # label -> its link
    with contextlib.ExitStack() as stack:
        urls, holds = [], []
        for label, rtt in links:
            if rtt == 0:
                urls.append(bench.url)
                holds.append(lambda: None)
                continue
            link = DelayedLink(Upstream.of(bench.url), rtt)
            link.start()
            stack.callback(link.stop)
            direct = stack.enter_context(bench.connect())
            through = stack.enter_context(bench.connect(url_through(bench.url, link.port)))

            def added(direct=direct, through=through) -> float:
                return _added_round_trip(through, direct)

            link.calibrate(added)
            urls.append(url_through(bench.url, link.port))
            holds.append(lambda link=link, added=added: link.hold(added))
            held[label] = link
        # The reads of every link first, all on the seeded data: the writes add orders, which
        # the next link's order page would show (a page of the bench's few customers).
        _vacuum(bench)
        for url, m, hold in zip(urls, measured, holds):
            _measure_reads(bench, url, m, fixture, hold)
        for url, m, hold in zip(urls, measured, holds):
            _vacuum(bench)
            _measure_writes(bench, url, m, fixture, rng, hold)

    metrics = [Metric("orders: data", size, "orders", "",
                      f"tenant {TENANT} and {OTHER}, {size:,} orders each, bulk-loaded in {seeded.seconds:.0f} s")]
    for m in measured:
        detail = "measured from the client; every extra query of the ORM costs at least this"
        if m.label in held and held[m.label].held:
            added = [t * 1e6 for t in held[m.label].held]
            detail += (f"; the round trip the link adds, measured {len(added)} times, before every round of the clients"
                       f" (warm-ups included) and before trimming the delay toward {held[m.label].round_trip * 1e6:.0f} µs:"
                       f" {min(added):.0f}–{max(added):.0f} µs, mean {statistics.mean(added):.0f}")
        metrics.append(Metric(f"orders: one round trip (SELECT 1), {m.label}", round(m.round_trip * 1e6), "µs", "", detail))
    judged = measured[-1]  # the goals apply to the link when there is one: the published figures are round-trip savings
    for name in PUBLISHED:
        for m in measured:
            rate = {side: m.rate(name, side) for side in ("strata", "orm", "orm_eager")}
            parity = ""
            if (name, "strata") in m.events:
                per = {side: m.events[(name, side)][0] / m.events[(name, side)][1] for side in rate}
                seal = {side: m.events[(name, side)][2] / m.events[(name, side)][1] * 1e6 for side in rate}
                parity = (f"; ledger events per operation: Strata {per['strata']:.1f}, ORM {per['orm']:.1f}; sealing them"
                          f" (after each batch, not in the ratio): Strata {seal['strata']:.0f} µs, ORM {seal['orm']:.0f} µs"
                          " per operation")
                if abs(per["strata"] - per["orm"]) > 1e-9 or abs(per["strata"] - per["orm_eager"]) > 1e-9:
                    raise RuntimeError(f"{name}: the ORM client wrote {per['orm']:.1f} ledger events per operation and "
                                       f"Strata {per['strata']:.1f}; the comparison would not be like for like")
            fresh = {"revenue analytics (top 20)": "; Strata reads the projection of the last refresh, the ORM aggregates live",
                     "inventory check (20 products)": "; Strata reads the open-order counts the order writes keep, the ORM"
                                                      " counts open orders live"}.get(name, "")
            metrics.append(Metric(
                f"orders: {name}, Strata ÷ ORM, {m.label}", round(rate["strata"] / rate["orm"], 2), "×",
                f">= {PUBLISHED[name]}" if m is judged else "",
                f"Strata {rate['strata']:,.0f} ops/s (1 round trip), ORM {rate['orm']:,.0f} ops/s "
                f"({m.trips[(name, 'orm')]:.1f} round trips, lazy loading); with eager loading "
                f"{rate['strata'] / rate['orm_eager']:.2f}× (ORM {rate['orm_eager']:,.0f} ops/s, "
                f"{m.trips[(name, 'orm_eager')]:.1f} round trips); published {PUBLISHED[name]}×{parity}{fresh}"))
    return metrics


def _vacuum(bench: Bench) -> None:
    """VACUUM (ANALYZE) of the tables the bench reads and writes, before the reads (fresh
    statistics after the seed) and before each link's writes: the writes leave dead row
    versions behind on the few hot products (thousands of updates a minute), which would slow
    the next link."""
    with bench.connect() as admin:
        admin.execute("VACUUM (ANALYZE) orders.tb_product, orders.tb_order, orders.tb_order_item, orders.tb_payment,"
                      " tenancy.tb_identifier_counter")


def select_1_seconds(conn: psycopg.Connection, n: int) -> float:
    """The mean time of n SELECT 1 in a row on conn: one round trip."""
    started = time.perf_counter()
    for _ in range(n):
        conn.execute("SELECT 1")
    return (time.perf_counter() - started) / n


def _added_round_trip(through: psycopg.Connection, direct: psycopg.Connection) -> float:
    """What a link adds to a round trip: the median over 9 pairs of batches of 50 SELECT 1,
    through it and directly, one right after the other, so both see the machine alike."""
    select_1_seconds(through, 10)  # warm both up
    select_1_seconds(direct, 10)
    return statistics.median(select_1_seconds(through, 50) - select_1_seconds(direct, 50) for _ in range(9))


def _round_trip_seconds(conn: psycopg.Connection) -> float:
    """The median of 7 batches of 100 SELECT 1: one round trip, robust to a busy moment."""
    select_1_seconds(conn, 20)
    return statistics.median(select_1_seconds(conn, 100) for _ in range(7))


register(Scenario("orders", "Strata's one-call reads and writes against an ORM-style client doing the same work", run))
