"""`strata bench --scenario orders`: a quick run proves it works end to end, and the ORM-style
client it measures against is checked to do the same work as Strata: the same documents for
every read and write, the same rows and ledger events. Numbers from a quick run mean little,
so only their presence and sanity are checked: benchmarks are not timed tests."""

from __future__ import annotations

import json
import socket
import threading
import time

import psycopg
import pytest

from conftest import run_cli
from strata import seed as seeding
from strata.bench import SCENARIOS, load_scenarios
from strata.bench.link import DelayedLink, Upstream, url_through
from strata.bench.orders import ADMIN, PUBLISHED, TENANT, OrmClient, Refused, StrataClient, select_1_seconds


def test_quick_orders_bench_reports_every_ratio(admin_url: str):
    result = run_cli("bench", "--scenario", "orders", "--quick", "--json", url=admin_url, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == {}
    metrics = {m["name"]: m for m in report["scenarios"]["orders"]}
    localhost = metrics["orders: one round trip (SELECT 1), localhost"]["value"]
    link = metrics["orders: one round trip (SELECT 1), +0.5 ms link"]["value"]
    assert link - localhost > 300, f"the link adds about 0.5 ms to a round trip: {localhost} µs, then {link} µs"
    for name, published in PUBLISHED.items():
        judged = metrics[f"orders: {name}, Strata ÷ ORM, +0.5 ms link"]
        assert judged["value"] > 0 and judged["goal"] == f">= {published}" and f"published {published}×" in judged["detail"]
        assert "with eager loading" in judged["detail"]
        assert metrics[f"orders: {name}, Strata ÷ ORM, localhost"]["goal"] == ""
    for name in ("create order", "process payment", "cancel order"):
        assert "ledger events per operation" in metrics[f"orders: {name}, Strata ÷ ORM, +0.5 ms link"]["detail"]
    assert "strata: running scenario orders" in result.stderr


def test_the_delayed_link_adds_its_round_trip_and_passes_bytes_intact(databases):
    url = databases.create("link")

    with psycopg.connect(url, autocommit=True) as conn:
        direct = select_1_seconds(conn, 20)
    with DelayedLink(Upstream.of(url), 0.004) as port, psycopg.connect(url_through(url, port), autocommit=True) as conn:
        delayed = select_1_seconds(conn, 20)
        payload = conn.execute("SELECT string_agg(md5(g::text), '') FROM generate_series(1, 20000) AS g").fetchone()[0]
    assert delayed - direct >= 0.004, "every round trip waits 2 ms each way"
    assert len(payload) == 20000 * 32 and payload.startswith("c4ca4238a0b923820dcc509a6f75849b")


def test_the_delayed_link_changes_its_delay_on_open_connections_and_holds_its_round_trip(databases):
    url = databases.create("link_hold")
    link = DelayedLink(Upstream.of(url), 0.002)
    port = link.start()
    try:
        with psycopg.connect(url_through(url, port), autocommit=True) as conn:
            def select_1() -> float:
                return select_1_seconds(conn, 10)

            assert select_1() < 0.008
            link.set_delay(0.012)
            assert select_1() >= 0.012, "the new delay applies to a connection opened before it"
            link.set_delay(0.002)
            assert select_1() < 0.008
            # A line that reaches the relay in two pieces is read whole: 6 ms each way.
            link._process.stdin.write("0.00")
            link._process.stdin.flush()
            time.sleep(0.05)
            assert select_1() < 0.008, "half a line changes nothing"
            link._process.stdin.write("6\n")
            link._process.stdin.flush()
            assert select_1() >= 0.012
            link.set_delay(0.002)

            # hold() moves the delay by half of what it measured too much or too little.
            assert link.hold(lambda: 0.003) == 0.003 and link.delay == pytest.approx(0.0015)
            assert link.hold(lambda: 0.001) == 0.001 and link.delay == pytest.approx(0.002)
            assert link.held == [0.003, 0.001]
            link.hold(lambda: 1.0)
            assert link.delay == 0.0, "never a negative delay"
            assert conn.execute("SELECT 42").fetchone() == (42,)
        process = link._process
        process.stdin.close()
        process.wait(10)  # the relay ends when the bench that started it is gone (TimeoutExpired otherwise)
    finally:
        link.stop()


def test_a_shorter_delay_never_reorders_the_bytes_of_a_connection():
    # Upstream is an echo server. "A" goes out with a 0.4 s round trip, then the delay drops to
    # 2 ms and "B" goes out: B must still come back after A, or a PostgreSQL session through
    # the link would be scrambled.
    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    link = DelayedLink(Upstream(host="127.0.0.1", port=server.getsockname()[1]), 0.4)
    try:
        with socket.create_connection(("127.0.0.1", link.start()), timeout=5) as client:
            client.sendall(b"A")
            time.sleep(0.05)
            link.set_delay(0.002)
            client.sendall(b"B")
            received = b""
            while len(received) < 2:
                received += client.recv(2)
        assert received == b"AB"
    finally:
        link.stop()
        server.close()


def test_stopping_a_link_whose_relay_died_raises_nothing():
    link = DelayedLink(Upstream(host="127.0.0.1", port=9), 0.001)
    link.start()
    link._process.kill()
    link._process.wait(5)
    with pytest.raises(OSError):
        link.set_delay(0.002)  # the relay is gone: the pipe is broken
    link.stop()
    assert link._process is None


def test_the_scenario_registers_itself():
    load_scenarios()
    assert "orders" in SCENARIOS and SCENARIOS["orders"].summary


@pytest.fixture(scope="module")
def clients(databases):
    url = databases.create("orm")
    seeding.seed_tenants(url, [seeding.TenantSeed(slug=TENANT, name="Orders Bench", admin=ADMIN, orders_planned=600)],
                         mode="bulk")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT core.refresh_revenue()")
    strata_conn, orm_conn = psycopg.connect(url, autocommit=True), psycopg.connect(url, autocommit=True)
    for conn, role in ((strata_conn, "strata_app"), (orm_conn, "strata_owner")):
        conn.execute(f"SET ROLE {role}")
        conn.execute("SELECT app.set_context(%s, %s, false)", (TENANT, ADMIN))
    tenant, actor = orm_conn.execute("SELECT tenant_id, actor_id FROM app.current_context()").fetchone()
    yield {"strata": StrataClient(strata_conn), "lazy": OrmClient(orm_conn, tenant, actor, eager=False),
           "eager": OrmClient(orm_conn, tenant, actor, eager=True), "url": url}
    strata_conn.close()
    orm_conn.close()


def test_orm_reads_return_what_the_views_return(clients):
    strata = clients["strata"]
    customers = [r[0] for r in strata.conn.execute("SELECT identifier FROM app.v_customer_orders ORDER BY order_count DESC LIMIT 3")]
    for orm in (clients["lazy"], clients["eager"]):
        assert orm.summary_page(None) == strata.summary_page(None)
        for customer in customers:
            assert orm.customer_history(customer) == strata.customer_history(customer)
        assert orm.inventory(0) == strata.inventory(0)
        live = [{k: v for k, v in row.items() if k != "refreshedAt"} for row in strata.revenue(None)]
        assert orm.revenue(None) == live, "nothing changed since the refresh, so live equals projected"
    assert clients["lazy"].round_trips > clients["eager"].round_trips


def _without_times(document: dict) -> dict:
    volatile = {"id", "orderNumber", "createdAt", "updatedAt", "paidAt", "cancelledAt"}
    out = {k: v for k, v in document.items() if k not in volatile}
    out["payments"] = [{k: v for k, v in p.items() if k not in {"id", "identifier", "createdAt"}} for p in document["payments"]]
    return out


def test_orm_writes_do_what_the_app_functions_do(clients):
    url = clients["url"]
    order = {"customer": "CUS-000003", "items": [{"product": "SKU-0002", "quantity": 2}, {"product": "sku-0005", "quantity": 1}]}

    def events() -> int:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT count(*) FROM audit.events").fetchone()[0]

    documents, ledger, cancelled_orders = {}, {}, {}
    for side in ("strata", "lazy", "eager"):
        client, before = clients[side], events()
        created = client.create_order({**order, "idempotency_key": f"orm-test-{side}"})
        paid = client.process_payment({"order": created["identifier"], "amount": created["object_data"]["totalAmount"],
                                       "method": "card", "version": created["version"]})
        cancelled = client.cancel_order({"order": paid["identifier"], "reason": "Test refund", "version": paid["version"]})
        cancelled_orders[side] = cancelled["identifier"]
        documents[side] = [_without_times(r["object_data"]) for r in (created, paid, cancelled)]
        ledger[side] = events() - before
        assert (created["version"], paid["version"], cancelled["version"]) == (1, 2, 3)
        assert cancelled["object_data"]["refundAmount"] == created["object_data"]["totalAmount"]
    assert documents["lazy"] == documents["strata"] and documents["eager"] == documents["strata"]
    # create: the order and its two lines; pay: the payment, the order, order.paid; cancel: the
    # payment, the order, order.cancelled. Reserving and releasing stock are not product events.
    assert ledger["lazy"] == ledger["strata"] == ledger["eager"] == 9, ledger

    # The same refusals, too; a cancellation asked again with the version it was cancelled at is
    # the NOOP, not a stale version.
    for side in ("strata", "lazy", "eager"):
        with pytest.raises(Refused) as again:
            clients[side].cancel_order({"order": cancelled_orders[side], "reason": "again", "version": 2})
        assert again.value.status == "noop:already_cancelled", side
    for orm in (clients["lazy"], clients["eager"]):
        with pytest.raises(Refused) as stale:
            orm.process_payment({"order": "ORD-000001", "amount": 1, "method": "card", "version": 99})
        assert stale.value.status in ("conflict:stale_version", "noop:already_paid")
        with pytest.raises(Refused) as unknown:
            orm.create_order({"customer": "CUS-000003", "items": [{"product": "NOPE", "quantity": 1}]})
        assert unknown.value.status == "not_found:product"
        with pytest.raises(Refused) as invalid:
            orm.create_order({"customer": "CUS-000003", "items": [], "coupon": "FREE"})
        assert invalid.value.status.startswith("validation:")
