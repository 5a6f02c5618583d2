"""Orders under real concurrency, as the application's login role (a non-superuser granted
strata_app, so RLS and the app/core split are what production meets): no overselling, one
winner per version, pay and cancel racing to a consistent state and ledger, gapless order
numbers, and idempotency keys that create one order whatever the race."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter

import psycopg
import pytest

from conftest import app_url_of, race, run_cli

CLIENTS = 20


@pytest.fixture(scope="module")
def db_url(databases) -> str:
    """This module's own database, so its tenants and users never meet other tests' counts."""
    return databases.create("orders_race")


@pytest.fixture(scope="module")
def app_url(db_url: str) -> str:
    return app_url_of(db_url)


def _tenant(db_url: str, prefix: str) -> tuple[str, str]:
    """A fresh tenant with a customer; (slug, admin email)."""
    slug, admin = f"{prefix}-{secrets.token_hex(3)}", f"admin@{prefix}.test"
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT status FROM core.create_tenant(%s, %s, %s)",
                            (slug.title(), slug, admin)).fetchone()[0] == "created"
    call(db_url, slug, admin, "create_customer", {"name": "Ada Buyer", "email": "ada@buyers.test"}, expect="created")
    return slug, admin


def call(url: str, slug: str, admin: str, function: str, payload: dict, expect: str | None = None) -> dict:
    """One app call in its own transaction, as an application request makes it."""
    with psycopg.connect(url) as conn:
        conn.execute("SELECT app.set_context(%s, %s)", (slug, admin))
        row = conn.cursor(row_factory=psycopg.rows.dict_row).execute(
            f"SELECT * FROM app.{function}(%s)", (json.dumps(payload),)).fetchone()
    if expect is not None:
        assert row["status"] == expect, row
    return row


def app_call(conn: psycopg.Connection, slug: str, admin: str, function: str, payload: dict) -> dict:
    with conn.transaction():
        conn.execute("SELECT app.set_context(%s, %s)", (slug, admin))
        return conn.cursor(row_factory=psycopg.rows.dict_row).execute(
            f"SELECT * FROM app.{function}(%s)", (json.dumps(payload),)).fetchone()


def stock(url: str, slug: str, admin: str, sku: str) -> dict:
    with psycopg.connect(url) as conn:
        conn.execute("SELECT app.set_context(%s, %s)", (slug, admin))
        return conn.execute("SELECT data FROM app.v_product_inventory WHERE sku = %s", (sku,)).fetchone()[0]


def test_twenty_clients_for_ten_units_never_oversell(db_url: str, app_url: str):
    slug, admin = _tenant(db_url, "oversell")
    call(app_url, slug, admin, "create_product", {"sku": "LAST-TEN", "name": "Scarce", "price": 5, "stock": 10},
         expect="created")
    seen_available: list[int] = []
    watching = threading.Event()

    def watch() -> None:  # stock is never negative, not only at the end
        with psycopg.connect(app_url, autocommit=True) as conn:
            conn.execute("SELECT app.set_context(%s, %s, false)", (slug, admin))
            while not watching.is_set():
                seen_available.append(conn.execute(
                    "SELECT available FROM app.v_product_inventory WHERE sku = 'LAST-TEN'").fetchone()[0])

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = race(CLIENTS, lambda conn, n: app_call(conn, slug, admin, "create_order",
                                                         {"customer": "CUS-000001",
                                                          "items": [{"product": "last-ten", "quantity": 1}]}), app_url)
    finally:
        watching.set()
        watcher.join(30)
    statuses = Counter(r["status"] for r in results)
    assert statuses == {"created": 10, "conflict:insufficient_stock": 10}, statuses
    refused = [r for r in results if r["status"] == "conflict:insufficient_stock"]
    assert all(r["errors"][0]["field"] == "items[0].quantity" and r["id"] is None for r in refused)
    final = stock(app_url, slug, admin, "LAST-TEN")
    assert (final["onHand"], final["reserved"], final["available"], final["inOrders"]) == (10, 10, 0, 10)
    assert seen_available and min(seen_available) >= 0, "available stock went negative"
    created = sorted(r["identifier"] for r in results if r["status"] == "created")
    assert created == [f"ORD-{n:06d}" for n in range(1, 11)], "refusals took no order number"


def test_two_payments_with_the_same_version_one_wins(db_url: str, app_url: str):
    slug, admin = _tenant(db_url, "paytwice")
    call(app_url, slug, admin, "create_product", {"sku": "P", "name": "P", "price": 12.5, "stock": 10}, expect="created")
    order = call(app_url, slug, admin, "create_order", {"customer": "CUS-000001", "items": [{"product": "P", "quantity": 2}]},
                 expect="created")
    payment = {"order": order["identifier"], "amount": 25, "method": "card", "version": order["version"]}
    results = race(2, lambda conn, n: app_call(conn, slug, admin, "process_payment", payment), app_url)
    assert sorted(r["status"] for r in results) == ["conflict:stale_version", "updated"], results
    stale = next(r for r in results if r["status"] == "conflict:stale_version")
    assert stale["version"] == order["version"] + 1, "the refusal carries the current version"
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT app.set_context(%s, %s)", (slug, admin))
        details = conn.execute("SELECT data FROM app.v_order_details WHERE identifier = %s",
                               (order["identifier"],)).fetchone()[0]
    assert details["status"] == "paid" and len(details["payments"]) == 1


def test_pay_and_cancel_racing_end_in_a_consistent_state_and_ledger(db_url: str, app_url: str):
    slug, admin = _tenant(db_url, "paycancel")
    call(app_url, slug, admin, "create_product", {"sku": "R", "name": "R", "price": 7, "stock": 1000}, expect="created")
    outcomes = Counter()
    for _ in range(12):
        order = call(app_url, slug, admin, "create_order", {"customer": "CUS-000001", "items": [{"product": "R", "quantity": 3}]},
                     expect="created")
        ref, version = order["identifier"], order["version"]
        pay = {"order": ref, "amount": 21, "method": "wallet", "version": version}
        cancel = {"order": ref, "reason": "Changed my mind"}
        results = race(2, lambda conn, n: app_call(conn, slug, admin, *(("process_payment", pay) if n == 0
                                                                        else ("cancel_order", cancel))), app_url)
        paid, cancelled = results
        assert cancelled["status"] == "updated", cancelled
        with psycopg.connect(app_url) as conn:
            conn.execute("SELECT app.set_context(%s, %s)", (slug, admin))
            details = conn.execute("SELECT data FROM app.v_order_details WHERE identifier = %s", (ref,)).fetchone()[0]
            history = [r[0] for r in conn.execute("SELECT operation FROM app.order_history(%s)", (ref,))]
        assert details["status"] == "cancelled" and details["cancelReason"] == "Changed my mind"
        if paid["status"] == "updated":  # paid first: the cancellation refunded it
            outcomes["paid, then cancelled and refunded"] += 1
            assert details["refundAmount"] == 21 and [p["status"] for p in details["payments"]] == ["refunded"]
            assert cancelled["extra_metadata"]["refundAmount"] == 21
            assert history.index("order.paid") < history.index("order.cancelled")
        else:  # cancelled first: the payment was refused and nothing was charged
            outcomes["cancelled, then payment refused"] += 1
            assert paid["status"] == "conflict:stale_version", paid
            assert details["refundAmount"] is None and details["payments"] == []
            assert "order.paid" not in history and "order.cancelled" in history
    final = stock(app_url, slug, admin, "R")
    assert (final["reserved"], final["onHand"]) == (0, 1000), "every cancellation released its stock"
    assert final["inOrders"] == 0, "no order is open any more"
    assert sum(outcomes.values()) == 12, outcomes
    verified = run_cli("audit", "verify", "--json", url=db_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _queued_behind_a_row_lock(db_url: str, app_url: str, slug: str, admin: str, order: str,
                              calls: list[tuple[str, dict]]) -> list[dict]:
    """Makes each app call on a connection of its own while another transaction holds the order's
    row lock, and lets the lock go only when every call waits on it, the first call queued first.
    PostgreSQL hands a row to its waiters in the order they queued, so the calls meet the order in
    the order given, all of them in flight at once."""
    results: list = [None] * len(calls)
    errors: list[BaseException] = []
    pids: list[int] = []
    started = threading.Event()

    def run(n: int) -> None:
        try:
            with psycopg.connect(app_url) as conn:
                pids.append(conn.info.backend_pid)
                started.set()
                results[n] = app_call(conn, slug, admin, *calls[n])
        except BaseException as err:  # surfaced below
            errors.append(err)
            started.set()

    with psycopg.connect(db_url) as holder, psycopg.connect(db_url, autocommit=True) as monitor:
        locked = holder.execute("SELECT 1 FROM orders.tb_order AS o JOIN tenancy.tb_organization AS t ON t.id = o.tenant_id"
                                " WHERE t.slug = %s AND o.identifier = %s FOR UPDATE OF o", (slug, order)).fetchall()
        assert len(locked) == 1, f"no order {order} in {slug} to hold"
        threads = []
        for n in range(len(calls)):
            started.clear()
            threads.append(threading.Thread(target=run, args=(n,)))
            threads[-1].start()
            assert started.wait(30) and not errors, errors
            for _ in range(3000):  # until this call waits for the row
                if monitor.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                                   (pids[-1],)).fetchone()[0]:
                    break
                time.sleep(0.01)
            else:
                pytest.fail(f"{calls[n][0]} never waited for the order's row lock")
        holder.commit()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


@pytest.mark.parametrize("first", ["process_payment", "cancel_order"])
def test_pay_and_cancel_in_flight_together_end_as_the_first_to_reach_the_order_decides(db_url: str, app_url: str,
                                                                                       first: str):
    """The race above may go the same way every round; here both requests wait on the order at
    once, queued in a chosen order, so each outcome is proven."""
    slug, admin = _tenant(db_url, "queued")
    call(app_url, slug, admin, "create_product", {"sku": "Q", "name": "Q", "price": 7, "stock": 100}, expect="created")
    order = call(app_url, slug, admin, "create_order", {"customer": "CUS-000001", "items": [{"product": "Q", "quantity": 3}]},
                 expect="created")
    ref = order["identifier"]
    pay = ("process_payment", {"order": ref, "amount": 21, "method": "card", "version": order["version"]})
    cancel = ("cancel_order", {"order": ref, "reason": "Changed my mind"})
    calls = [pay, cancel] if first == "process_payment" else [cancel, pay]
    results = dict(zip((c[0] for c in calls), _queued_behind_a_row_lock(db_url, app_url, slug, admin, ref, calls)))
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT app.set_context(%s, %s)", (slug, admin))
        details = conn.execute("SELECT data FROM app.v_order_details WHERE identifier = %s", (ref,)).fetchone()[0]
        history = [r[0] for r in conn.execute("SELECT operation FROM app.order_history(%s)", (ref,))]
    assert results["cancel_order"]["status"] == "updated", results
    assert details["status"] == "cancelled"
    if first == "process_payment":
        assert results["process_payment"]["status"] == "updated", results
        assert results["cancel_order"]["extra_metadata"]["refundAmount"] == 21
        assert details["refundAmount"] == 21 and [p["status"] for p in details["payments"]] == ["refunded"]
        assert history.index("order.paid") < history.index("order.cancelled")
    else:
        assert results["process_payment"]["status"] == "conflict:stale_version", results
        assert results["process_payment"]["version"] == order["version"] + 1, "the refusal carries the current version"
        assert details["refundAmount"] is None and details["payments"] == []
        assert "order.paid" not in history
    final = stock(app_url, slug, admin, "Q")
    assert (final["reserved"], final["onHand"], final["inOrders"]) == (0, 100, 0)


def test_a_refused_status_change_holds_no_lock_on_the_order(db_url: str, app_url: str):
    """Permission comes before the order's row lock: a viewer's refused status change, in a
    transaction still open, does not make a writer wait for the order."""
    slug, admin = _tenant(db_url, "refused-lock")
    call(app_url, slug, admin, "create_user", {"email": "vera@viewers.test", "name": "Vera", "role": "viewer"},
         expect="created")
    call(app_url, slug, admin, "create_product", {"sku": "LOCKED", "name": "Held", "price": 3, "stock": 5}, expect="created")
    order = call(app_url, slug, admin, "create_order",
                 {"customer": "CUS-000001", "items": [{"product": "LOCKED", "quantity": 1}]}, expect="created")
    with psycopg.connect(app_url) as viewer:  # its transaction stays open until the writer is done
        viewer.execute("SELECT app.set_context(%s, %s)", (slug, "vera@viewers.test"))
        refused = viewer.execute("SELECT status FROM app.update_order_status(%s)", (json.dumps(
            {"order": order["identifier"], "status": "shipped", "version": order["version"]}),)).fetchone()[0]
        assert refused == "forbidden:orders.fulfil"
        with psycopg.connect(app_url) as writer:
            writer.execute("SET lock_timeout = '2s'")
            writer.execute("SELECT app.set_context(%s, %s)", (slug, admin))
            cancelled = writer.execute("SELECT status FROM app.cancel_order(%s)", (json.dumps(
                {"order": order["identifier"], "reason": "Changed my mind"}),)).fetchone()[0]
        assert cancelled == "updated"


def test_concurrent_orders_get_unique_gapless_identifiers(db_url: str, app_url: str):
    slug, admin = _tenant(db_url, "gapless")
    for sku in ("A", "B", "C"):
        call(app_url, slug, admin, "create_product", {"sku": sku, "name": sku, "price": 1, "stock": 10000}, expect="created")
    workers, per_worker = 8, 15

    def work(conn: psycopg.Connection, n: int) -> list[dict]:
        out = []
        for i in range(per_worker):
            items = [{"product": "ABC"[(n + i) % 3], "quantity": 1}, {"product": "ABC"[(n + i + 1) % 3], "quantity": 2}]
            if i % 5 == 4:  # some orders are refused, and must not burn a number
                items = [{"product": "A", "quantity": 1}, {"product": "NOPE", "quantity": 1}]
            out.append(app_call(conn, slug, admin, "create_order", {"customer": "CUS-000001", "items": items}))
        return out

    results = [r for batch in race(workers, work, app_url) for r in batch]
    created = [r["identifier"] for r in results if r["status"] == "created"]
    assert Counter(r["status"] for r in results) == {"created": workers * 12, "not_found:product": workers * 3}
    assert len(set(created)) == len(created), "unique"
    assert sorted(created) == [f"ORD-{n:06d}" for n in range(1, len(created) + 1)], "gapless"
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT app.set_context(%s, %s)", (slug, admin))
        counted = conn.execute("SELECT count(*), count(DISTINCT identifier) FROM app.v_orders_summary").fetchone()
        items = conn.execute("SELECT sum((data ->> 'itemCount')::int) FROM app.v_orders_summary").fetchone()[0]
        reserved, in_orders = conn.execute("SELECT sum(reserved), sum(in_orders) FROM app.v_product_inventory").fetchone()
    assert counted == (len(created), len(created))
    assert items == reserved == len(created) * 3, "every reservation belongs to an order"
    assert in_orders == len(created) * 2, "each open order counts once for each of its two products"


def test_an_idempotency_key_raced_by_several_clients_creates_one_order(db_url: str, app_url: str):
    key_clients = 8
    slug, admin = _tenant(db_url, "idem")
    call(app_url, slug, admin, "create_product", {"sku": "K", "name": "K", "price": 3, "stock": 100}, expect="created")
    payload = {"customer": "CUS-000001", "items": [{"product": "K", "quantity": 4}], "idempotency_key": "checkout-42"}
    results = race(key_clients, lambda conn, n: app_call(conn, slug, admin, "create_order", payload), app_url)
    statuses = Counter(r["status"] for r in results)
    assert statuses == {"created": 1, "noop:already_exists": key_clients - 1}, statuses
    assert len({r["id"] for r in results}) == 1 and len({r["identifier"] for r in results}) == 1, "the same order"
    assert all(r["succeeded"] for r in results)
    final = stock(app_url, slug, admin, "K")
    assert final["reserved"] == 4, "reserved once"
    again = call(app_url, slug, admin, "create_order", payload, expect="noop:already_exists")
    assert again["identifier"] == "ORD-000001"
    second = call(app_url, slug, admin, "create_order", {**payload, "idempotency_key": "checkout-43"}, expect="created")
    assert second["identifier"] == "ORD-000002", "the raced key's losers took no order number"
