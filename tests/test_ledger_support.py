"""What the ledger tests share: a tenant-like tracked table of their own, writers, and the two
verifiers (audit.verify in SQL, `strata audit verify` as a subprocess). No tests here.

The table stands in for the domain tables until they exist: the triple id, tenant_id, a
version, a secret column left out of the ledger, RLS forced, and a SECURITY DEFINER writer
owned by strata_owner, the way app functions write.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import psycopg

from conftest import AUDITOR_LOGIN, app_url_of, login_url, run_cli

TENANTS = [uuid.UUID(f"00000000-0000-4000-8000-{n:012d}") for n in range(1, 51)]
ACTOR = uuid.UUID("00000000-0000-4000-8000-00000000a001")

SETUP = """
CREATE SCHEMA ledger_test AUTHORIZATION strata_owner;
SET ROLE strata_owner;
CREATE TABLE ledger_test.tb_item (
    pk_item bigint GENERATED ALWAYS AS IDENTITY,
    id uuid NOT NULL DEFAULT core.uuid_v7(),
    identifier text NOT NULL,
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    price numeric,
    secret text,
    data jsonb,
    version integer NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, pk_item)
);
ALTER TABLE ledger_test.tb_item ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger_test.tb_item FORCE ROW LEVEL SECURITY;
CREATE POLICY item_all ON ledger_test.tb_item FOR ALL TO strata_owner, strata_app
    USING (tenant_id = NULLIF(pg_catalog.current_setting('strata.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(pg_catalog.current_setting('strata.tenant_id', true), '')::uuid);
CREATE FUNCTION ledger_test.create_item(p_tenant uuid, p_name text, p_data jsonb DEFAULT NULL)
    RETURNS uuid
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_id uuid;
BEGIN
    PERFORM pg_catalog.set_config('strata.tenant_id', p_tenant::text, true);
    INSERT INTO ledger_test.tb_item (identifier, tenant_id, name, price, secret, data)
    VALUES ('ITM-' || p_name, p_tenant, p_name, 9.99, 'pw-' || p_name, p_data)
    RETURNING id INTO v_id;
    RETURN v_id;
END
$$;
GRANT USAGE ON SCHEMA ledger_test TO strata_app;
GRANT EXECUTE ON FUNCTION ledger_test.create_item(uuid, text, jsonb) TO strata_app;
RESET ROLE;
SELECT audit.enable_tracking('ledger_test.tb_item', p_exclude => ARRAY['secret']);
"""


def setup(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SETUP)


def write(conn: psycopg.Connection, tenant: uuid.UUID, name: str, data: dict | None = None) -> uuid.UUID:
    """One item through the SECURITY DEFINER writer, in the caller's transaction."""
    return conn.execute("SELECT ledger_test.create_item(%s, %s, %s)",
                        (tenant, name, json.dumps(data) if data is not None else None)).fetchone()[0]


def seal(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute("SELECT blocks, events, last_block FROM audit.seal()")
        return dict(zip(("blocks", "events", "last_block"), cur.fetchone()))


@dataclass
class Ledger:
    url: str
    blocks: int
    events: list[int] = field(default_factory=list)  # pk_event, in order


def sealed_ledger(databases, label: str) -> Ledger:
    """A fresh database with three sealed blocks: block 1 a single 3-event transaction, block 2
    three transactions over three tenants, block 3 two transactions."""
    url = databases.create(label)
    setup(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET strata.audit_seal_on_commit = 'off'")  # blocks exactly where we seal
        with conn.transaction():
            for i in range(3):
                write(conn, TENANTS[0], f"a{i}", {"n": i})
        seal(url)
        for t in range(3):
            with conn.transaction():
                write(conn, TENANTS[t], f"b{t}", {"tenant": t})
        seal(url)
        for i in range(2):
            with conn.transaction():
                write(conn, TENANTS[1], f"c{i}", {"i": i})
                write(conn, TENANTS[2], f"d{i}", None)
        seal(url)
        pks = [r[0] for r in conn.execute("SELECT pk_event FROM audit.events ORDER BY pk_event")]
        blocks = conn.execute("SELECT count(*) FROM audit.blocks").fetchone()[0]
    assert blocks == 3 and len(pks) == 10
    return Ledger(url, blocks, pks)


def tamper(url: str, statement: str, params=None) -> None:
    """Change the ledger as a determined owner would: with the maintenance switch on."""
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SET LOCAL strata.audit_maintenance = 'on'")
            conn.execute(statement, params)


def block_of(url: str, pk_event: int) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT audit.event_block(txid) FROM audit.events WHERE pk_event = %s",
                            (pk_event,)).fetchone()[0]


def sql_verify(url: str, tenant: uuid.UUID | None = None) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute("SELECT * FROM audit.verify(%s)", (tenant,))
        return dict(zip([d.name for d in cur.description], cur.fetchone()))


def cli_verify(url: str, *args: str) -> tuple[int, dict]:
    result = run_cli("audit", "verify", "--json", *args, url=url)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def auditor_url_of(url: str) -> str:
    return login_url(url, AUDITOR_LOGIN)
