"""`strata bench --scenario ledger`: what the audit ledger costs writers, how fast it verifies,
and how soon a commit is sealed.

Writes. Two identical tenant tables, the ledger attached to one. Two workloads, each run with
its plain and its audited variant side by side in one pgbench run (8 clients; every transaction
picks a variant at random), for one hot tenant and for 100 tenants:
  mutation  a mutation built the way Strata's app/core functions are (SPEC §3.3): in app, the
            JSONB input validated field by field (types, lengths, unknown keys), the actor
            checked as an active member of the tenant, the tenant context set, errors turned
            into a result by an exception block; in core, a permission checked through the
            actor's roles, the row inserted under forced RLS, and the result returned with its
            object data read back through a security_invoker view. (Strata's own
            app.create_product does more than this: contract-driven validation, more lookups.)
  insert    the bare INSERT through a SECURITY DEFINER function: the ledger's worst case.
The ratio is the plain variant's mean latency over the audited one's, both measured in the same
run, so both meet the same load and noise: it is the throughput the audited write reaches, as a
fraction of the plain one, at that concurrency.

Commit to seal: for audited events sealed while pgbench ran (by the writers' own commits),
seal time minus event time, percentiles.

Verification: the ledger is filled to N events (default 1,000,000) with well-formed CDC-shaped
events (hashed by the SQL encoding) in transactions of 50,000, sealed, then verified by the
same code as `strata audit verify`; events per second.
"""

from __future__ import annotations

import threading
import time
import uuid

from strata import ledger
from strata.bench import Bench, Metric, Scenario, register

TABLE = """
CREATE TABLE bench.tb_item_{v} (
    pk_item bigint GENERATED ALWAYS AS IDENTITY,
    id uuid NOT NULL DEFAULT core.uuid_v7(),
    identifier text NOT NULL,
    tenant_id uuid NOT NULL,
    name text NOT NULL,
    quantity integer NOT NULL,
    price numeric(12, 2) NOT NULL,
    attributes jsonb NOT NULL DEFAULT '{{}}',
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by uuid,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by uuid,
    PRIMARY KEY (tenant_id, pk_item),
    UNIQUE (tenant_id, id)
);
CREATE SEQUENCE bench.item_no_{v};
ALTER TABLE bench.tb_item_{v} ENABLE ROW LEVEL SECURITY;
ALTER TABLE bench.tb_item_{v} FORCE ROW LEVEL SECURITY;
CREATE POLICY item_{v}_all ON bench.tb_item_{v} FOR ALL TO strata_owner
    USING (tenant_id = NULLIF(pg_catalog.current_setting('strata.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(pg_catalog.current_setting('strata.tenant_id', true), '')::uuid);

CREATE VIEW bench.v_item_{v} WITH (security_invoker = true) AS
SELECT i.id, i.tenant_id, i.identifier, pg_catalog.jsonb_build_object(
           'id', i.id, 'identifier', i.identifier, 'name', i.name, 'quantity', i.quantity, 'price', i.price,
           'attributes', i.attributes, 'version', i.version, 'createdAt', i.created_at, 'createdBy', i.created_by,
           'updatedAt', i.updated_at, 'updatedBy', i.updated_by) AS data
  FROM bench.tb_item_{v} AS i;

-- core: typed arguments, the business rules (a permission through the actor's roles).
CREATE FUNCTION bench.core_create_item_{v}(p_name text, p_quantity integer, p_price numeric, p_attributes jsonb)
    RETURNS jsonb
    VOLATILE
    LANGUAGE plpgsql
AS $$
DECLARE
    v_tenant uuid := NULLIF(pg_catalog.current_setting('strata.tenant_id', true), '')::uuid;
    v_actor uuid := NULLIF(pg_catalog.current_setting('strata.actor_id', true), '')::uuid;
    v_id uuid;
BEGIN
    IF NOT EXISTS (SELECT 1
                     FROM bench.tb_member_role AS mr
                     JOIN bench.tb_role_permission AS rp ON rp.tenant_id = mr.tenant_id AND rp.role = mr.role
                    WHERE mr.tenant_id = v_tenant AND mr.user_id = v_actor AND rp.permission = 'items.create') THEN
        RETURN '{{"status": "forbidden:items.create", "succeeded": false}}';
    END IF;
    INSERT INTO bench.tb_item_{v} (identifier, tenant_id, name, quantity, price, attributes, created_by, updated_by)
    VALUES ('ITM-' || pg_catalog.lpad(pg_catalog.nextval('bench.item_no_{v}')::text, 8, '0'), v_tenant,
            p_name, p_quantity, p_price, coalesce(p_attributes, '{{}}'), v_actor, v_actor)
    RETURNING id INTO v_id;
    RETURN (SELECT pg_catalog.jsonb_build_object('status', 'created', 'succeeded', true, 'entity', 'item',
                                                 'id', v.id, 'identifier', v.identifier, 'version', 1,
                                                 'object_data', v.data)
              FROM bench.v_item_{v} AS v
             WHERE v.tenant_id = v_tenant AND v.id = v_id);
END
$$;

-- app: JSONB in, validated field by field, context checked and set, errors turned into results.
CREATE FUNCTION bench.create_item_{v}(p_input jsonb)
    RETURNS jsonb
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
DECLARE
    v_tenant uuid;
    v_actor uuid;
    v_unknown text;
BEGIN
    IF pg_catalog.jsonb_typeof(p_input) IS DISTINCT FROM 'object' THEN
        RETURN '{{"status": "validation:not_an_object", "succeeded": false}}';
    END IF;
    SELECT pg_catalog.string_agg(k, ', ') INTO v_unknown
      FROM pg_catalog.jsonb_object_keys(p_input) AS k
     WHERE k NOT IN ('tenant', 'actor', 'name', 'quantity', 'price', 'attributes');
    IF v_unknown IS NOT NULL THEN
        RETURN pg_catalog.jsonb_build_object('status', 'validation:unknown_field', 'succeeded', false, 'errors', v_unknown);
    END IF;
    IF pg_catalog.jsonb_typeof(p_input -> 'name') IS DISTINCT FROM 'string'
       OR pg_catalog.length(p_input ->> 'name') NOT BETWEEN 1 AND 200 THEN
        RETURN '{{"status": "validation:name", "succeeded": false}}';
    END IF;
    IF pg_catalog.jsonb_typeof(p_input -> 'quantity') IS DISTINCT FROM 'number'
       OR (p_input ->> 'quantity') !~ '^[0-9]{{1,9}}$' THEN
        RETURN '{{"status": "validation:quantity", "succeeded": false}}';
    END IF;
    IF pg_catalog.jsonb_typeof(p_input -> 'price') IS DISTINCT FROM 'number' OR (p_input ->> 'price')::numeric < 0 THEN
        RETURN '{{"status": "validation:price", "succeeded": false}}';
    END IF;
    IF p_input ? 'attributes' AND pg_catalog.jsonb_typeof(p_input -> 'attributes') IS DISTINCT FROM 'object' THEN
        RETURN '{{"status": "validation:attributes", "succeeded": false}}';
    END IF;
    v_tenant := (p_input ->> 'tenant')::uuid;
    v_actor := (p_input ->> 'actor')::uuid;
    IF NOT EXISTS (SELECT 1 FROM bench.tb_member AS m
                    WHERE m.tenant_id = v_tenant AND m.user_id = v_actor AND m.active) THEN
        RETURN '{{"status": "forbidden:not_a_member", "succeeded": false}}';
    END IF;
    PERFORM pg_catalog.set_config('strata.tenant_id', v_tenant::text, true);
    PERFORM pg_catalog.set_config('strata.actor_id', v_actor::text, true);
    RETURN bench.core_create_item_{v}(p_input ->> 'name', (p_input ->> 'quantity')::integer,
                                      (p_input ->> 'price')::numeric, p_input -> 'attributes');
EXCEPTION WHEN OTHERS THEN
    RETURN pg_catalog.jsonb_build_object('status', 'error', 'succeeded', false, 'message', sqlerrm);
END
$$;

CREATE FUNCTION bench.insert_item_{v}(p_tenant uuid, p_n integer)
    RETURNS void
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_catalog.set_config('strata.tenant_id', p_tenant::text, true);
    INSERT INTO bench.tb_item_{v} (identifier, tenant_id, name, quantity, price)
    VALUES ('ITM-' || p_n, p_tenant, 'Item ' || p_n, p_n % 100, p_n * 0.01);
END
$$;
"""

SETUP = """
CREATE SCHEMA bench AUTHORIZATION strata_owner;
SET ROLE strata_owner;
CREATE TABLE bench.tb_member (
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    active boolean NOT NULL DEFAULT true,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE TABLE bench.tb_member_role (
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    role text NOT NULL,
    PRIMARY KEY (tenant_id, user_id, role)
);
CREATE TABLE bench.tb_role_permission (
    tenant_id uuid NOT NULL,
    role text NOT NULL,
    permission text NOT NULL,
    PRIMARY KEY (tenant_id, role, permission)
);
-- 100 tenants, each with one member (id = tenant id) who is an admin allowed items.create.
INSERT INTO bench.tb_member (tenant_id, user_id)
SELECT bench_tenant.t, bench_tenant.t FROM (
    SELECT pg_catalog.format('00000000-0000-4000-8000-%s', pg_catalog.lpad(g::text, 12, '0'))::uuid AS t
      FROM pg_catalog.generate_series(1, 100) AS g) AS bench_tenant;
INSERT INTO bench.tb_member_role SELECT tenant_id, user_id, 'admin' FROM bench.tb_member;
INSERT INTO bench.tb_role_permission
SELECT m.tenant_id, 'admin', p.permission
  FROM bench.tb_member AS m, (VALUES ('items.create'), ('items.update'), ('items.delete')) AS p (permission);
""" + TABLE.format(v="plain") + TABLE.format(v="audited") + """
RESET ROLE;
SELECT audit.enable_tracking('bench.tb_item_audited', 'item');
"""

TENANT = "('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))"
MUTATION = """\\set t random(1, :tenants)
\\set q random(0, 500)
SELECT bench.create_item_{v}(jsonb_build_object('tenant', {tenant}, 'actor', {tenant}, 'name', 'Item ' || :q::text,
       'quantity', :q::integer, 'price', :q::integer * 1.25,
       'attributes', jsonb_build_object('color', 'blue', 'size', :q::integer % 5)));
"""
INSERT = """\\set t random(1, :tenants)
\\set n random(1, 100000000)
SELECT bench.insert_item_{v}({tenant}::uuid, :n::integer);
"""

FILL = """
WITH r AS (
    SELECT ROW(pg_catalog.nextval('audit.events_pk_event_seq'), core.uuid_v7(),
               pg_catalog.format('00000000-0000-4000-8000-%%s', pg_catalog.lpad((1 + g %% 100)::text, 12, '0'))::uuid,
               1, pg_catalog.pg_current_xact_id(), g, pg_catalog.clock_timestamp(),
               '00000000-0000-4000-8000-00000000a001'::uuid, %(correlation)s::uuid, NULL, 'strata_owner', session_user,
               'bench.tb_item_audited', 'item', core.uuid_v7(), 'ITM-' || g, 'insert', NULL,
               pg_catalog.jsonb_build_object('id', core.uuid_v7(), 'identifier', 'ITM-' || g, 'name', 'Item ' || g,
                                             'quantity', g %% 100, 'price', g * 1.25, 'version', 1,
                                             'attributes', '{"color": "blue", "size": 3}'::jsonb,
                                             'created_at', pg_catalog.now()),
               NULL, NULL, NULL)::audit.events AS e
      FROM pg_catalog.generate_series(1, %(n)s) AS g
)
INSERT INTO audit.events OVERRIDING SYSTEM VALUE
SELECT (r.e).pk_event, (r.e).id, (r.e).tenant_id, (r.e).encoding, (r.e).txid, (r.e).tx_seq, (r.e).occurred_at,
       (r.e).actor_id, (r.e).correlation_id, (r.e).causation_id, (r.e).db_role, (r.e).login_role,
       (r.e).source_table, (r.e).entity_type, (r.e).entity_id, (r.e).identifier, (r.e).operation,
       (r.e).old_data, (r.e).new_data, (r.e).changed_fields, (r.e).metadata, audit.event_hash(r.e)
  FROM r
"""

SEAL_LAG = """
WITH b AS (
    SELECT block_no, sealed_at, snapshot,
           coalesce(lag(snapshot) OVER (ORDER BY block_no), audit.genesis_snapshot()) AS prev
      FROM audit.blocks
)
SELECT extract(EPOCH FROM b.sealed_at - e.occurred_at)
  FROM b CROSS JOIN LATERAL audit.block_members(b.prev, b.snapshot) AS e
 WHERE b.sealed_at BETWEEN %(start)s AND %(stop)s
"""


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def run(bench: Bench) -> list[Metric]:
    quick = bench.options.quick
    seconds = bench.options.duration or (2.0 if quick else 15.0)
    target = bench.options.events or (20_000 if quick else 1_000_000)
    with bench.connect() as conn:
        conn.execute(SETUP)
    metrics: list[Metric] = []
    lags: list[float] = []
    for workload, template in (("mutation", MUTATION), ("insert", INSERT)):
        scripts = {v: template.format(v=v, tenant=TENANT) for v in ("plain", "audited")}
        for tenants, label in ((1, "hot tenant"), (100, "100 tenants")):
            with bench.connect() as conn:
                start = conn.execute("SELECT clock_timestamp()", binary=True).fetchone()[0]
            result = bench.run_pgbench(scripts, seconds, {"tenants": str(tenants)})
            with bench.connect() as conn:
                stop = conn.execute("SELECT clock_timestamp()", binary=True).fetchone()[0]
                lags += [float(r[0]) for r in conn.execute(SEAL_LAG, {"start": start, "stop": stop}, binary=False)]
            plain, audited = result.scripts["plain"], result.scripts["audited"]
            failed = plain.failed + audited.failed
            metrics.append(Metric(
                f"{workload}, {label}: audited / plain", round(plain.latency_ms / audited.latency_ms, 3), "",
                ">= 0.75" if workload == "mutation" else "",
                f"latency {plain.latency_ms:.3f} vs {audited.latency_ms:.3f} ms; {plain.transactions + audited.transactions:,} "
                f"transactions in {seconds:.0f} s at {result.tps:,.0f} tps, {bench.options.clients} clients"
                + (f"; {failed} failed" if failed else "")))
    metrics.append(Metric("commit to seal, median", _percentile(lags, 0.5), "s", "",
                          f"{len(lags):,} events sealed by the writers' own commits during the runs"))
    metrics.append(Metric("commit to seal, 95th percentile", _percentile(lags, 0.95), "s", "<= 5"))
    metrics.append(Metric("commit to seal, longest", max(lags) if lags else None, "s"))

    # Fill to the target size, in parallel on two connections, then seal and verify.
    with bench.connect() as conn:
        have = conn.execute("SELECT count(*) FROM audit.events").fetchone()[0]
    missing = max(0, target - have)
    batch = min(50_000, max(1, missing))
    batches = (missing + batch - 1) // batch
    filled = time.monotonic()

    def fill(worker: int) -> None:
        with bench.connect() as c:
            c.execute("SET strata.audit_seal_on_commit = 'off'")
            for i in range(worker, batches, 2):
                size = min(batch, missing - i * batch)
                with c.transaction():
                    c.execute(FILL, {"n": size, "correlation": str(uuid.UUID(int=i + 1))})

    workers = [threading.Thread(target=fill, args=(w,)) for w in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    with bench.connect() as conn:
        conn.execute("SELECT audit.seal()")
        total = conn.execute("SELECT count(*) FROM audit.events").fetchone()[0]
    filled = time.monotonic() - filled
    runs = []
    for _ in range(1 if quick else 2):
        with bench.connect() as conn:
            report = ledger.verify(conn)
        if not report.ok:
            raise RuntimeError(f"the benchmark ledger does not verify: {report.problem.message}")
        runs.append(report)
    best = min(runs, key=lambda r: r.seconds)
    metrics.append(Metric("strata audit verify", round(best.events / best.seconds), "events/s", ">= 100000",
                          f"{best.events:,} events in {best.blocks} blocks, {best.seconds:.2f} s "
                          f"(best of {len(runs)}; filling and sealing took {filled:.1f} s)"))
    if total != best.events:
        raise RuntimeError(f"verified {best.events} events of {total}")
    return metrics


register(Scenario("ledger", "audited writes vs plain ones, commit-to-seal time, verification speed", run))
