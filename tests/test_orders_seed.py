"""`strata seed` and `strata refresh` as users run them: both seeding paths leave data that obeys
every rule of the orders domain (totals, payments, refunds, stock, gapless identifiers in
created_at order), `strata verify` and `strata audit verify` pass afterwards, the app functions
carry on where the seed stopped, and the revenue projection matches the orders."""

from __future__ import annotations

import json
import re

import psycopg
import pytest

from conftest import app_url_of, run_cli, run_psql

# Every row returned is a broken rule; run as a superuser (it reads every tenant).
VIOLATIONS = """
WITH it AS (
    SELECT tenant_id, fk_order, sum(quantity) AS q, sum(line_total) AS t, count(*) AS n, max(line_number) AS last_line
      FROM orders.tb_order_item GROUP BY 1, 2),
pay AS (
    SELECT tenant_id, fk_order, count(*) FILTER (WHERE status = 'captured') AS captured,
           count(*) FILTER (WHERE status = 'refunded') AS refunded, sum(amount) AS amount
      FROM orders.tb_payment GROUP BY 1, 2)
SELECT 'order totals', o.identifier
  FROM orders.tb_order AS o LEFT JOIN it ON it.tenant_id = o.tenant_id AND it.fk_order = o.pk_order
 WHERE it.q IS DISTINCT FROM o.item_count OR it.t IS DISTINCT FROM o.total_amount OR it.n <> it.last_line
UNION ALL
SELECT 'payments for ' || o.status, o.identifier
  FROM orders.tb_order AS o LEFT JOIN pay ON pay.tenant_id = o.tenant_id AND pay.fk_order = o.pk_order
 WHERE CASE o.status
         WHEN 'pending' THEN pay.fk_order IS NOT NULL OR o.paid_at IS NOT NULL
         WHEN 'cancelled' THEN o.cancelled_at IS NULL OR o.cancel_reason IS NULL OR
              CASE WHEN o.refund_amount IS NULL THEN pay.fk_order IS NOT NULL
                   ELSE pay.refunded IS DISTINCT FROM 1 OR pay.captured <> 0 OR pay.amount <> o.refund_amount
                        OR o.refund_amount <> o.total_amount END
         ELSE o.paid_at IS NULL
              -- paid once and in full; a free order is paid without a payment row
              OR CASE WHEN o.total_amount = 0 THEN pay.fk_order IS NOT NULL
                      ELSE pay.captured IS DISTINCT FROM 1 OR pay.refunded <> 0 OR pay.amount <> o.total_amount END
              OR (o.status IN ('shipped', 'delivered') AND o.shipped_at IS NULL)
              OR (o.status = 'delivered' AND o.delivered_at IS NULL) END
UNION ALL
SELECT 'stock', p.sku
  FROM orders.tb_product AS p
  LEFT JOIN (SELECT it.tenant_id, it.fk_product, sum(it.quantity) AS units
               FROM orders.tb_order_item AS it
               JOIN orders.tb_order AS o ON o.tenant_id = it.tenant_id AND o.pk_order = it.fk_order
              WHERE o.status IN ('pending', 'paid') GROUP BY 1, 2) AS r
    ON r.tenant_id = p.tenant_id AND r.fk_product = p.pk_product
 WHERE p.stock_reserved <> coalesce(r.units, 0) OR p.stock_on_hand < p.stock_reserved
UNION ALL
SELECT 'counter ' || c.scope, c.tenant_id::text
  FROM tenancy.tb_identifier_counter AS c
 CROSS JOIN LATERAL (
       SELECT count(*) AS n, max(substr(x.identifier, 5)::bigint) AS top
         FROM (SELECT identifier FROM orders.tb_order AS o WHERE c.scope = 'order' AND o.tenant_id = c.tenant_id
               UNION ALL SELECT identifier FROM orders.tb_payment AS p WHERE c.scope = 'payment' AND p.tenant_id = c.tenant_id
               UNION ALL SELECT identifier FROM orders.tb_customer AS u WHERE c.scope = 'customer' AND u.tenant_id = c.tenant_id
              ) AS x) AS k
 WHERE c.scope IN ('order', 'payment', 'customer') AND (k.n <> c.last_value OR k.top <> c.last_value)
UNION ALL
SELECT 'numbers follow time', o.identifier
  FROM (SELECT identifier, created_at, lag(created_at) OVER (PARTITION BY tenant_id ORDER BY pk_order) AS before,
               lag(identifier) OVER (PARTITION BY tenant_id ORDER BY pk_order) AS previous
          FROM orders.tb_order) AS o
 WHERE o.created_at < o.before OR o.identifier < o.previous
"""


def violations(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(VIOLATIONS).fetchall()


def seed(url: str, *args: str) -> dict:
    result = run_cli("seed", *args, "--json", url=url, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_verifies(url: str) -> None:
    verify = run_cli("verify", url=url)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    audit = run_cli("audit", "verify", url=url)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def app_call(url: str, slug: str, function: str, payload: dict) -> dict:
    with psycopg.connect(app_url_of(url)) as conn:
        conn.execute("SELECT app.set_context(%s, %s)", (slug, f"admin@{slug}.example"))
        return conn.cursor(row_factory=psycopg.rows.dict_row).execute(
            f"SELECT * FROM app.{function}(%s)", (json.dumps(payload),)).fetchone()


def hint_statements(seed_output: str) -> list[str]:
    """The statements of the seed's "Try, in strata db psql:" hint, one per line as a person
    pastes them (psql commits each on its own)."""
    hint = next(line for line in seed_output.splitlines() if line.startswith("Try, in strata db psql: "))
    return [f"{s.strip()};" for s in hint.split(": ", 1)[1].split(";") if s.strip()]


def test_on_the_demo_data_the_hint_shows_the_newest_orders_and_strata_test_passes(databases):
    # The data `make demo` makes (seed's defaults). Its tenants already hold ORD-000001 and
    # CUS-000001, which the pgTAP files create again in tenants of their own; README: `strata
    # test` checks a database you point it at, and leaves it as it was.
    url = databases.create("demo_data")
    seeded = run_cli("seed", url=url, timeout=300)
    assert seeded.returncode == 0, seeded.stderr

    # What it prints (`make demo` shows it): a row per tenant with what the tenant holds, as the
    # database counts it, and a total.
    printed = {cells[0]: cells[2:7] for cells in ([c.strip() for c in line.split("│")] for line in seeded.stdout.splitlines())
               if len(cells) == 9}
    with psycopg.connect(url) as conn:
        # The columns admin, customers, products, orders and new orders (on a new database, all of them).
        counted = {slug: [f"admin@{slug}.example", str(customers), str(products), str(orders), str(orders)]
                   for slug, customers, products, orders in conn.execute(
            "SELECT t.slug, (SELECT count(*) FROM orders.tb_customer AS c WHERE c.tenant_id = t.id),"
            " (SELECT count(*) FROM orders.tb_product AS p WHERE p.tenant_id = t.id),"
            " (SELECT count(*) FROM orders.tb_order AS o WHERE o.tenant_id = t.id)"
            " FROM tenancy.tb_organization AS t")}
    assert printed == counted and sorted(counted) == ["demo-1", "demo-2", "demo-3"], seeded.stdout
    assert all(row[3] == "100" for row in printed.values()), "seed's defaults: 300 orders over 3 tenants"
    assert "Seeded 300 orders in 3 tenant(s)" in seeded.stdout, seeded.stdout

    # The hint, pasted into psql: newest first, although the orders of one seed batch share
    # their created_at.
    pasted = run_psql(url, "\n".join(hint_statements(seeded.stdout)))
    assert pasted.returncode == 0, pasted.stderr
    page = [json.loads(line)["orderNumber"] for line in pasted.stdout.splitlines() if line.startswith("{")]
    assert page == [f"ORD-{n:06d}" for n in range(100, 95, -1)], pasted.stdout

    def state() -> tuple:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT (SELECT count(*) FROM tenancy.tb_organization), (SELECT count(*) FROM orders.tb_order),"
                                " (SELECT count(*) FROM audit.events), (SELECT max(pk_event) FROM audit.events)").fetchone()

    before = state()
    result = run_cli("test", "--json", url=url, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    files = json.loads(result.stdout)
    assert len(files) >= 10 and [f["file"] for f in files if not f["ok"]] == [], files
    assert state() == before


def test_app_path_seeds_through_the_api_and_if_empty_seeds_once(databases):
    url = databases.create("seed_app")
    report = seed(url, "--tenants", "2", "--orders", "60", "--if-empty")
    assert report["seeded"] and report["mode"] == "app" and report["ledger"] == "every change"
    assert [(t["slug"], t["orders"], t["orders_created"]) for t in report["tenants"]] == [("demo-1", 30, 30), ("demo-2", 30, 30)]
    assert violations(url) == []
    with psycopg.connect(url) as conn:
        statuses = {r[0] for r in conn.execute("SELECT DISTINCT status FROM orders.tb_order")}
        # Every order was made by app.create_order: its insert is in the ledger, and its history folds.
        captured = conn.execute("SELECT count(*) FROM audit.events WHERE entity_type = 'order' AND operation = 'insert'").fetchone()[0]
    assert statuses >= {"pending", "paid", "delivered"}, statuses
    assert captured == 60
    assert_verifies(url)
    with psycopg.connect(url) as conn:  # the seed seals its own last transactions before it ends
        assert conn.execute("SELECT events FROM audit.unsealed()").fetchone()[0] == 0
        # ... and analyzes what it wrote, so the planner and `strata inspect` know the row counts
        never_analyzed = conn.execute(
            "SELECT array_agg(oid::regclass::text ORDER BY 1) FROM pg_class"
            " WHERE relnamespace IN ('orders'::regnamespace, 'tenancy'::regnamespace) AND relkind = 'r'"
            " AND reltuples < 0").fetchone()[0]  # -1: never analyzed nor vacuumed
    assert never_analyzed is None, never_analyzed

    # The hint a person is given works pasted into psql, as the superuser `strata db psql` is
    # (psql commits each statement on its own): it shows demo-1's orders only.
    shown = run_cli("seed", "--tenants", "2", "--orders", "0", url=url)
    pasted = run_psql(url, "\n".join([*hint_statements(shown.stdout), "SELECT count(*) FROM app.v_orders_summary;"]))
    assert pasted.returncode == 0, pasted.stderr
    assert pasted.stdout.splitlines()[-1] == "30", pasted.stdout
    # A tenant named by its slug is shown by it too.
    one = run_cli("audit", "verify", "--tenant", "demo-1", url=url)
    assert one.returncode == 0 and one.stdout.startswith("Ledger verified (demo-1, "), one.stdout

    again = run_cli("seed", "--if-empty", url=url)
    assert again.returncode == 0 and "Not seeding: the database already has 2 tenant(s)" in again.stdout
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM orders.tb_order").fetchone()[0] == 60

    # Without --if-empty it reuses the tenants and adds orders, numbered on from the last.
    more = seed(url, "--tenants", "1", "--orders", "5")
    assert more["tenants"][0]["orders"] == 35 and more["tenants"][0]["customers_created"] == 0
    assert violations(url) == []


def test_bulk_path_keeps_every_rule_and_the_api_carries_on(databases):
    url = databases.create("seed_bulk")
    report = seed(url, "--tenants", "3", "--orders", "3600", "--mode", "bulk")
    assert report["mode"] == "bulk" and report["ledger"] == "one seed.bulk_load event per batch"
    assert [t["orders"] for t in report["tenants"]] == [1200, 1200, 1200]
    assert violations(url) == []
    with psycopg.connect(url) as conn:
        mix = dict(conn.execute("SELECT status, count(*) FROM orders.tb_order GROUP BY 1").fetchall())
        loads = conn.execute("SELECT count(*), sum((new_data ->> 'orders')::int), min(new_data ->> 'firstIdentifier')"
                             "  FROM audit.events WHERE operation = 'seed.bulk_load' AND entity_type = 'order'").fetchone()
        catalog = dict(conn.execute("SELECT entity_type, sum((new_data ->> 'count')::int) FROM audit.events"
                                    " WHERE operation = 'seed.bulk_load' AND entity_type <> 'order' GROUP BY 1").fetchall())
        per_row = conn.execute("SELECT count(*) FROM audit.events WHERE entity_type = 'order'"
                               " AND operation <> 'seed.bulk_load'").fetchone()[0]
        span = conn.execute("SELECT max(created_at) - min(created_at) FROM orders.tb_order").fetchone()[0]
    assert set(mix) == {"pending", "paid", "shipped", "delivered", "cancelled"}, mix
    assert loads == (3, 3600, "ORD-000001"), "one honest ledger event per batch, naming what it loaded"
    assert catalog == {"customer": 180, "product": 36}, catalog
    assert per_row == 0, "the bulk path wrote no per-row events"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT events FROM audit.unsealed()").fetchone()[0] == 0
    assert span.days >= 360, "orders spread over the past year"
    assert_verifies(url)

    # The app functions continue the counters and the stock the bulk path left.
    customer = app_call(url, "demo-2", "create_customer", {"name": "New Buyer", "email": "new@buyer.test"})
    order = app_call(url, "demo-2", "create_order", {"customer": customer["identifier"],
                                                     "items": [{"product": "SKU-0001", "quantity": 1}]})
    assert (customer["status"], customer["identifier"]) == ("created", "CUS-000061")
    assert (order["status"], order["identifier"]) == ("created", "ORD-001201")
    paid = app_call(url, "demo-2", "process_payment", {"order": order["identifier"], "amount": order["object_data"]["totalAmount"],
                                                       "method": "card", "version": 1})
    assert paid["status"] == "updated"
    assert violations(url) == []

    # A second bulk run appends after the newest order, in time and in number. Its progress bar
    # goes to stderr, so --json output stays clean.
    result = run_cli("seed", "--tenants", "1", "--orders", "1500", "--mode", "bulk", "--json", url=url, timeout=300)
    assert result.returncode == 0, result.stderr
    assert re.search(r"seeding orders \(\w+\) ━+ 1500/1500", result.stderr), result.stderr
    more = json.loads(result.stdout)
    assert more["tenants"][0]["orders"] == 2700
    assert violations(url) == []


def test_bulk_path_with_ledger_captures_every_row(databases):
    url = databases.create("seed_ledger")
    seed(url, "--tenants", "1", "--orders", "500", "--mode", "bulk", "--with-ledger")
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT (SELECT count(*) FROM orders.tb_order) + (SELECT count(*) FROM orders.tb_order_item)"
                            " + (SELECT count(*) FROM orders.tb_payment)").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM audit.events WHERE entity_type IN ('order', 'order_item', 'payment')"
                              " AND operation = 'insert'").fetchone()[0]
        loads = conn.execute("SELECT count(*) FROM audit.events WHERE operation = 'seed.bulk_load'").fetchone()[0]
    assert events == rows and loads == 0
    assert violations(url) == []
    assert_verifies(url)


def test_seed_refuses_logins_that_cannot_create_tenants_in_one_sentence(app_url: str):
    result = run_cli("seed", "--orders", "10", url=app_url)
    assert result.returncode == 2, result.stderr
    assert "owner" in result.stderr and result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_refresh_rebuilds_revenue_from_paid_orders(databases, as_json: bool):
    url = databases.create("refresh")
    seed(url, "--tenants", "2", "--orders", "40")
    result = run_cli("refresh", *(["--json"] if as_json else []), url=url)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(url) as conn:
        expected = conn.execute("""
            SELECT it.tenant_id, it.fk_product, sum(it.quantity), count(DISTINCT it.fk_order), sum(it.line_total)
              FROM orders.tb_order_item AS it
              JOIN orders.tb_order AS o ON o.tenant_id = it.tenant_id AND o.pk_order = it.fk_order
             WHERE o.status IN ('paid', 'shipped', 'delivered')
             GROUP BY 1, 2 ORDER BY 1, 2""").fetchall()
        projected = conn.execute("SELECT tenant_id, fk_product, units_sold, order_count, revenue"
                                 "  FROM orders.tb_product_revenue ORDER BY 1, 2").fetchall()
    assert projected == expected and expected
    if as_json:
        assert json.loads(result.stdout)["rows"] == len(expected)
    else:
        assert result.stdout.startswith(f"Refreshed revenue analytics: {len(expected)} product row(s) in ")


def test_bulk_path_on_a_database_before_0006_says_to_migrate(databases):
    url = databases.create("seed_before_0006", migrate=False)
    assert run_cli("migrate", "--to", "0005_open_orders", url=url).returncode == 0
    result = run_cli("seed", "--tenants", "1", "--orders", "10", "--mode", "bulk", url=url)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("Error: ") and "0006_uuid_v7_at" in last and "Traceback" not in result.stderr
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM orders.tb_order").fetchone()[0] == 0
