"""Tenancy as users meet it: concurrent user creation keeps identifiers unique and gapless,
`strata verify` catches each way of breaking isolation and names the object, `strata tenant`
creates and lists tenants, and lookups by id or identifier are index scans."""

from __future__ import annotations

import json
import re
import secrets
import shlex

import psycopg
import pytest

from conftest import ROOT, app_url_of, race, run_cli, run_psql


def _create_tenant(url: str, slug: str, admin: str) -> None:
    with psycopg.connect(url) as conn:
        status = conn.execute("SELECT status FROM core.create_tenant(%s, %s, %s)", (slug.title(), slug, admin)).fetchone()[0]
        assert status == "created"


def test_concurrent_user_creation_keeps_identifiers_unique_and_gapless(db_url: str, app_url: str):
    slug = f"load-{secrets.token_hex(3)}"
    _create_tenant(db_url, slug, "root@load.test")
    workers, per_worker = 8, 20

    def work(conn: psycopg.Connection, worker: int) -> list[tuple[str, str | None]]:
        rows = []
        for i in range(per_worker):
            # Every worker also races for the same email once: one wins, the rest NOOP.
            email = "dup@load.test" if i == per_worker // 2 else f"w{worker}-u{i}@load.test"
            with conn.transaction():
                conn.execute("SELECT app.set_context(%s, 'root@load.test')", (slug,))
                rows.append(conn.execute("SELECT status, identifier FROM app.create_user(%s)",
                                         (json.dumps({"email": email, "name": f"W{worker} U{i}"}),)).fetchone())
        return rows

    results = [(status, ident) for rows in race(workers, work, app_url) for status, ident in rows]
    created = [ident for status, ident in results if status == "created"]
    noops = [ident for status, ident in results if status == "noop:already_exists"]
    assert len(results) == workers * per_worker
    assert len(noops) == workers - 1, "exactly one worker creates the shared email"
    assert len(created) == len(set(created)), "identifiers are unique"
    expected = {f"USR-{n:06d}" for n in range(2, 2 + len(created))}
    assert set(created) == expected, "identifiers are gapless (USR-000001 is the admin)"
    # Counted as the application login: a superuser would bypass RLS and see every tenant.
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT app.set_context(%s, 'root@load.test')", (slug,))
        count = conn.execute("SELECT count(*) FROM app.v_users").fetchone()[0]
    assert count == len(created) + 1, "no user lost"


BREAKAGES = [
    pytest.param("ALTER TABLE tenancy.tb_user NO FORCE ROW LEVEL SECURITY", "tenancy.tb_user", "RLS forced",
                 "ALTER TABLE tenancy.tb_user FORCE ROW LEVEL SECURITY", id="no-force-rls"),
    pytest.param("DROP POLICY tenant_delete ON tenancy.tb_role", "tenancy.tb_role", "policies for every command",
                 None, id="dropped-policy"),
    pytest.param("CREATE FUNCTION core.leaky() RETURNS int SECURITY DEFINER LANGUAGE sql AS 'SELECT 1'",
                 "core.leaky()", "SECURITY DEFINER pins search_path", "DROP FUNCTION core.leaky()", id="definer-without-search-path"),
    pytest.param("GRANT EXECUTE ON FUNCTION core.has_permission(text) TO PUBLIC", "core.has_permission(text)",
                 "no PUBLIC EXECUTE in core and audit", "REVOKE EXECUTE ON FUNCTION core.has_permission(text) FROM PUBLIC",
                 id="public-execute"),
    pytest.param("CREATE VIEW app.v_leak AS SELECT id, email FROM tenancy.tb_user", "app.v_leak",
                 "views are security_invoker", "DROP VIEW app.v_leak", id="view-without-security-invoker"),
    pytest.param("GRANT USAGE ON SCHEMA orders TO strata_app", "strata_app on schema orders",
                 "app roles use the app schema only", "REVOKE USAGE ON SCHEMA orders FROM strata_app", id="app-role-schema-usage"),
    pytest.param("GRANT USAGE ON SCHEMA orders TO PUBLIC", "strata_readonly on schema orders",
                 "app roles use the app schema only", "REVOKE USAGE ON SCHEMA orders FROM PUBLIC", id="public-schema-usage"),
    pytest.param("ALTER TABLE orders.tb_order DISABLE TRIGGER audit_ledger", "audit_ledger on orders.tb_order",
                 "triggers enabled", "ALTER TABLE orders.tb_order ENABLE TRIGGER audit_ledger", id="ledger-capture-disabled"),
    pytest.param("ALTER TABLE audit.events ENABLE REPLICA TRIGGER guard_append_only", "guard_append_only on audit.events",
                 "triggers enabled", "ALTER TABLE audit.events ENABLE TRIGGER guard_append_only", id="ledger-guard-replica-only"),
]


@pytest.fixture(scope="module")
def breakable_url(databases) -> str:
    """A database of its own: these tests break its schema on purpose."""
    return databases.create("breakable")


@pytest.mark.parametrize(("breakage", "obj", "check", "repair"), BREAKAGES)
def test_verify_names_each_broken_rule_and_passes_after_repair(breakable_url: str, breakage: str, obj: str,
                                                               check: str, repair: str | None):
    assert run_cli("verify", "--only", "schema", url=breakable_url).returncode == 0
    with psycopg.connect(breakable_url, autocommit=True) as conn:
        conn.execute(breakage)
    result = run_cli("verify", "--only", "schema", "--json", url=breakable_url)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    failing = [f for f in report["findings"] if not f["ok"]]
    assert any(f["object"] == obj and f["check"] == check and f["fix"] for f in failing), failing
    human = run_cli("verify", "--only", "schema", url=breakable_url)
    assert human.returncode == 1 and obj in human.stdout and "FAIL" in human.stdout
    assert human.stderr.strip().count("\n") == 0, "one line on stderr"
    if repair:
        with psycopg.connect(breakable_url, autocommit=True) as conn:
            conn.execute(repair)
    else:
        assert run_cli("migrate", "--rebuild", url=breakable_url).returncode == 0
    after = run_cli("verify", "--only", "schema", url=breakable_url)
    assert after.returncode == 0, after.stdout


def test_tenant_create_and_list_through_the_cli(db_url: str):
    slug = f"cli-{secrets.token_hex(3)}"
    first = run_cli("tenant", "create", "Cli Co", "--slug", slug, "--admin", "Boss@Cli.test", url=db_url)
    assert first.returncode == 0, first.stderr
    assert f"Organization {slug} created" in first.stdout
    with psycopg.connect(db_url) as conn:  # sealed before the command ends, not left to the next write
        assert conn.execute("SELECT events FROM audit.unsealed()").fetchone()[0] == 0
    again = run_cli("tenant", "create", "Cli Co", "--slug", slug, "--admin", "boss@cli.test", url=db_url)
    assert again.returncode == 0 and "Nothing to do" in again.stdout
    clash = run_cli("tenant", "create", "Other Co", "--slug", slug, "--admin", "x@cli.test", url=db_url)
    assert clash.returncode == 1 and "conflict:slug_taken" in clash.stderr
    bad = run_cli("tenant", "create", "Bad", "--slug", "Not A Slug", "--admin", "nope", url=db_url)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("Error: The tenant was not created: slug must be") and bad.stderr.endswith(
        "admin_email must be an email address (validation:invalid_format).\n"), bad.stderr
    listed = json.loads(run_cli("tenant", "list", "--json", url=db_url).stdout)
    assert any(t["slug"] == slug and t["name"] == "Cli Co" for t in listed)


def test_lookups_by_id_or_identifier_are_index_scans(databases):
    url = databases.create("lookups")
    with psycopg.connect(url, autocommit=True) as conn:
        for n in range(10):
            conn.execute("SELECT core.create_tenant(%s, %s, %s)", (f"T{n}", f"lk-{n}", f"admin{n}@lk.test"))
        conn.execute("""
            INSERT INTO tenancy.tb_user (tenant_id, identifier, email, name)
            SELECT o.tenant_id, 'BULK-' || g, 'u' || g || '@' || o.slug || '.test', 'User ' || g
              FROM tenancy.tb_organization AS o, generate_series(1, 3000) AS g""")
        conn.execute("ANALYZE tenancy.tb_user")
        user_id, tenant_id = conn.execute(
            "SELECT u.id, o.tenant_id FROM tenancy.tb_user AS u JOIN tenancy.tb_organization AS o USING (tenant_id) "
            "WHERE o.slug = 'lk-3' AND u.identifier = 'BULK-1500'").fetchone()
    # As the application's role, so RLS adds the tenant predicate the indexes lead with.
    with psycopg.connect(app_url_of(url), autocommit=True) as conn:
        conn.execute("SELECT app.set_context('lk-3', 'admin3@lk.test', false)")
        plans = {
            "identifier": conn.execute("EXPLAIN SELECT * FROM app.v_users WHERE identifier = 'BULK-1500'").fetchall(),
            "id": conn.execute("EXPLAIN SELECT * FROM app.v_users WHERE id = %s", (user_id,)).fetchall(),
        }
    # The resolver's query, as app functions run it: as the owner, whom forced RLS binds too.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET ROLE strata_owner")
        conn.execute("SELECT set_config('strata.tenant_id', %s, false)", (str(tenant_id),))
        plans["resolver"] = conn.execute("EXPLAIN SELECT pk_user FROM tenancy.tb_user WHERE tenant_id = "
                                         "NULLIF(current_setting('strata.tenant_id', true), '')::uuid"
                                         " AND identifier = 'BULK-7'").fetchall()
    for name, rows in plans.items():
        text = "\n".join(r[0] for r in rows)
        scan_of_users = [line for line in text.splitlines() if "tb_user " in line or "on tb_user" in line]
        assert scan_of_users and all("Index" in line for line in scan_of_users), f"{name}:\n{text}"


def test_the_readmes_tenant_context_example_runs_in_psql_and_sees_one_tenant(databases):
    """The first SQL block under 'Tenant context', pasted into psql as a superuser (as
    `strata db psql` connects), after the README's command that makes acme, with another
    tenant in the database."""
    url = databases.create("readme_context")
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Tenant context", 1)[1]
    make_acme = re.search(r"`strata (tenant create [^`]*)`", section).group(1)
    for args in (shlex.split(make_acme), ["tenant", "create", "Other", "--slug", "other", "--admin", "eve@other.test"]):
        made = run_cli(*args, url=url)
        assert made.returncode == 0, made.stderr
    example = re.search(r"```sql\n(.*?)```", section, re.S).group(1)
    pasted = run_psql(url, example)
    assert pasted.returncode == 0, pasted.stderr
    assert "ada@acme.test" in pasted.stdout and "eve@other.test" not in pasted.stdout, pasted.stdout
    assert "created" in pasted.stdout, pasted.stdout
    with psycopg.connect(url) as conn:
        tenants = conn.execute("SELECT o.identifier FROM tenancy.tb_user AS u JOIN tenancy.tb_organization AS o"
                               " ON o.tenant_id = u.tenant_id WHERE u.email = 'bob@acme.test'").fetchall()
    assert tenants == [("acme",)]
