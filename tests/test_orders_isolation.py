"""Tenant isolation in the orders domain, as the application's login role: tenant A cannot
reach tenant B's customers, products or orders through any reference (identifier or id) of
any app function, and sees nothing of B in any app view."""

from __future__ import annotations

import json
import secrets

import psycopg
import pytest
from psycopg.rows import dict_row

from conftest import app_url_of

SKU_A, SKU_B = "A-ONLY", "B-ONLY"


@pytest.fixture(scope="module")
def db_url(databases) -> str:
    """This module's own database, so its tenants and users never meet other tests' counts."""
    return databases.create("orders_iso")


@pytest.fixture(scope="module")
def app_url(db_url: str) -> str:
    return app_url_of(db_url)


def _as(conn: psycopg.Connection, slug: str, admin: str, function: str, payload: dict) -> dict:
    with conn.transaction():
        conn.execute("SELECT app.set_context(%s, %s)", (slug, admin))
        return conn.cursor(row_factory=dict_row).execute(f"SELECT * FROM app.{function}(%s)",
                                                         (json.dumps(payload),)).fetchone()


@pytest.fixture(scope="module")
def two_tenants(db_url: str, app_url: str) -> dict:
    """Tenants A and B, each with a customer, a product and a paid order."""
    made = {}
    for side, sku in (("a", SKU_A), ("b", SKU_B)):
        slug, admin = f"iso-{side}-{secrets.token_hex(3)}", f"admin@iso-{side}.test"
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT status FROM core.create_tenant(%s, %s, %s)", (slug, slug, admin)).fetchone()[0] == "created"
        with psycopg.connect(app_url) as conn:
            product = _as(conn, slug, admin, "create_product", {"sku": sku, "name": f"Thing {side}", "price": 10, "stock": 50})
            if side == "b":  # B's numbers run ahead, so its identifiers do not exist in A at all
                early = _as(conn, slug, admin, "create_customer", {"name": "Early Bird", "email": "early@b.test"})
                for _ in range(3):
                    _as(conn, slug, admin, "create_order", {"customer": early["identifier"],
                                                            "items": [{"product": sku, "quantity": 1}]})
            customer = _as(conn, slug, admin, "create_customer", {"name": f"Buyer {side}", "email": f"buyer@{side}.test"})
            order = _as(conn, slug, admin, "create_order", {"customer": customer["identifier"],
                                                            "items": [{"product": sku, "quantity": 1}]})
            _as(conn, slug, admin, "process_payment", {"order": order["identifier"], "amount": 10, "method": "cash",
                                                       "version": order["version"]})
            open_order = _as(conn, slug, admin, "create_order", {"customer": customer["identifier"],
                                                                 "items": [{"product": sku, "quantity": 2}]})
        assert {customer["status"], product["status"], order["status"], open_order["status"]} == {"created"}
        made[side] = {"slug": slug, "admin": admin, "customer": customer, "product": product, "order": order,
                      "open_order": open_order}
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT core.refresh_revenue()")
    assert b_ahead(made), "B's identifiers must not exist in A"
    return made


def b_ahead(made: dict) -> bool:
    a, b = made["a"], made["b"]
    return (b["customer"]["identifier"] not in (a["customer"]["identifier"],)
            and {b["order"]["identifier"], b["open_order"]["identifier"]}.isdisjoint(
                {a["order"]["identifier"], a["open_order"]["identifier"]}))


def _refs(entity: dict) -> list[str]:
    return [entity["identifier"], str(entity["id"])]


def test_references_to_another_tenant_are_not_found(app_url: str, two_tenants: dict):
    a, b = two_tenants["a"], two_tenants["b"]
    calls = []
    for ref in _refs(b["customer"]):
        calls.append(("create_order", {"customer": ref, "items": [{"product": SKU_A, "quantity": 1}]}, "not_found:customer"))
    for ref in _refs(b["product"]):
        calls.append(("create_order", {"customer": a["customer"]["identifier"], "items": [{"product": ref, "quantity": 1}]},
                      "not_found:product"))
        calls.append(("restock_product", {"product": ref, "quantity": 5}, "not_found:product"))
        calls.append(("add_order_item", {"order": a["open_order"]["identifier"], "product": ref, "quantity": 1},
                      "not_found:product"))
    for ref in _refs(b["open_order"]):
        calls += [("process_payment", {"order": ref, "amount": 20, "method": "card", "version": 1}, "not_found:order"),
                  ("cancel_order", {"order": ref, "reason": "not mine"}, "not_found:order"),
                  ("update_order_status", {"order": ref, "status": "cancelled", "version": 1}, "not_found:order"),
                  ("add_order_item", {"order": ref, "product": SKU_A, "quantity": 1}, "not_found:order")]
    for ref in _refs(b["order"]):
        calls.append(("update_order_status", {"order": ref, "status": "shipped", "version": 2}, "not_found:order"))
    with psycopg.connect(app_url) as conn:
        for function, payload, expected in calls:
            result = _as(conn, a["slug"], a["admin"], function, payload)
            assert result["status"] == expected, (function, payload, result)
            assert not result["succeeded"] and result["id"] is None and result["object_data"] is None
        with conn.transaction():
            conn.execute("SELECT app.set_context(%s, %s)", (a["slug"], a["admin"]))
            for ref in _refs(b["order"]):
                assert conn.execute("SELECT count(*) FROM app.order_history(%s)", (ref,)).fetchone()[0] == 0
    # B's data is untouched by A's attempts.
    with psycopg.connect(app_url) as conn:
        with conn.transaction():
            conn.execute("SELECT app.set_context(%s, %s)", (b["slug"], b["admin"]))
            stock = conn.execute("SELECT on_hand, reserved FROM app.v_product_inventory WHERE sku = %s", (SKU_B,)).fetchone()
            statuses = dict(conn.execute("SELECT identifier, status FROM app.v_orders_summary").fetchall())
    assert stock == (50, 6)
    assert statuses == {"ORD-000001": "pending", "ORD-000002": "pending", "ORD-000003": "pending",
                        b["order"]["identifier"]: "paid", b["open_order"]["identifier"]: "pending"}


def test_no_app_view_shows_another_tenants_rows(db_url: str, app_url: str, two_tenants: dict):
    with psycopg.connect(db_url) as conn:
        views = [r[0] for r in conn.execute(
            "SELECT format('%I.%I', schemaname, viewname) FROM pg_catalog.pg_views WHERE schemaname = 'app' ORDER BY 1")]
    assert {"app.v_orders_summary", "app.v_order_details", "app.v_customer_orders", "app.v_product_inventory",
            "app.v_revenue_by_product"} <= set(views)
    seen: dict[str, dict[str, set[str]]] = {}
    with psycopg.connect(app_url) as conn:
        for side in ("a", "b"):
            t = two_tenants[side]
            with conn.transaction():
                conn.execute("SELECT app.set_context(%s, %s)", (t["slug"], t["admin"]))
                for view in views:
                    rows = conn.execute(f"SELECT to_jsonb(v)::text FROM {view} AS v").fetchall()
                    seen.setdefault(view, {})[side] = {r[0] for r in rows}
    b = two_tenants["b"]
    b_markers = [str(b["customer"]["id"]), str(b["product"]["id"]), str(b["order"]["id"]), str(b["open_order"]["id"]),
                 b["slug"], SKU_B, "buyer@b.test"]
    for view, by_side in seen.items():
        a_text = "\n".join(by_side["a"])
        leaked = [m for m in b_markers if m in a_text]
        assert not leaked, f"{view} shows tenant B's {leaked} to tenant A"
        assert not (by_side["a"] & by_side["b"]), f"{view}: the same row in both tenants"
    for view in ("app.v_orders_summary", "app.v_order_details", "app.v_customer_orders", "app.v_product_inventory",
                 "app.v_revenue_by_product"):
        assert seen[view]["a"] and seen[view]["b"], f"{view} is empty: the test would prove nothing"
