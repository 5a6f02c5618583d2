"""Static checks of Strata's SQL: plpgsql_check over every PL/pgSQL function Strata installs
(when the server has the extension), and the sqlfluff configuration that `make lint` uses."""

from __future__ import annotations

import psycopg
import pytest

from conftest import ROOT

STRATA_SCHEMAS = ["core", "app", "audit", "tenancy", "orders", "work", "content"]

# One row per problem: every PL/pgSQL function in Strata's schemas, trigger functions checked
# against each table that fires them (plpgsql_check needs the table to resolve NEW and OLD).
PLPGSQL_ERRORS = """
WITH targets AS (
    SELECT p.oid AS fn, 0::oid AS relid
      FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
      JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
     WHERE l.lanname = 'plpgsql' AND n.nspname = ANY(%(schemas)s)
       AND p.prorettype NOT IN ('pg_catalog.trigger'::regtype, 'pg_catalog.event_trigger'::regtype)
    UNION
    SELECT t.tgfoid, t.tgrelid
      FROM pg_catalog.pg_trigger AS t
      JOIN pg_catalog.pg_proc AS p ON p.oid = t.tgfoid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
      JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
     WHERE NOT t.tgisinternal AND l.lanname = 'plpgsql' AND n.nspname = ANY(%(schemas)s)
)
SELECT t.fn::pg_catalog.regprocedure::text
       || CASE WHEN t.relid <> 0 THEN ' on ' || t.relid::pg_catalog.regclass::text ELSE '' END,
       c.lineno, c.sqlstate, c.message, c.detail, c.hint
  FROM targets AS t
 CROSS JOIN LATERAL public.plpgsql_check_function_tb(t.fn, t.relid, fatal_errors => false) AS c
 WHERE c.level = 'error'
 ORDER BY 1, 2
"""

PROBE = """
CREATE FUNCTION core.zz_plpgsql_check_probe()
    RETURNS integer
    STABLE
    LANGUAGE plpgsql
AS $$
BEGIN
    RETURN (SELECT no_such_column FROM pg_catalog.pg_class LIMIT 1);
END
$$;
"""


def plpgsql_errors(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(PLPGSQL_ERRORS, {"schemas": STRATA_SCHEMAS}).fetchall()


def test_plpgsql_check_finds_no_errors_in_strata_functions(databases):
    url = databases.create("plpgsql_check")
    with psycopg.connect(url, autocommit=True) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'plpgsql_check'").fetchone()
        if not available:
            pytest.skip("plpgsql_check is not installed on this server (Debian: postgresql-NN-plpgsql-check)")
        try:
            conn.execute("CREATE EXTENSION plpgsql_check")
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("creating the plpgsql_check extension needs a superuser on the test server")

        # The check must be able to fail: a function with an error that only shows when it runs.
        conn.execute(PROBE)
        found = plpgsql_errors(conn)
        assert any(row[0] == "core.zz_plpgsql_check_probe()" and "no_such_column" in row[3] for row in found), found
        conn.execute("DROP FUNCTION core.zz_plpgsql_check_probe()")

        errors = plpgsql_errors(conn)
    report = "\n".join(
        f"{fn} line {line}: {message} [{sqlstate}]" + (f" ({detail})" if detail else "") + (f" hint: {hint}" if hint else "")
        for fn, line, sqlstate, message, detail, hint in errors
    )
    assert not errors, f"plpgsql_check found errors:\n{report}"


@pytest.fixture(scope="module")
def lint():
    """Lints a string with the project's .sqlfluff, as `make lint` would; returns the rule codes."""
    from sqlfluff.core import FluffConfig, Linter

    linter = Linter(config=FluffConfig.from_path(str(ROOT)))

    def run(text: str) -> set[str]:
        return {v.rule_code() for v in linter.lint_string(text).get_violations()}

    return run


STRATA_STYLE = """\
-- requires: 0001_foundation

/* A table, its policy and a function the way STYLE.md writes them. */
CREATE TABLE core.tb_probe (
    pk_probe  bigint GENERATED ALWAYS AS IDENTITY,
    id        uuid        NOT NULL DEFAULT core.uuid_v7(),
    tenant_id uuid        NOT NULL,
    version   integer     NOT NULL DEFAULT 1,
    tags      text[]      NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, pk_probe)
);
CREATE POLICY probe_select ON core.tb_probe
    FOR SELECT TO strata_app
    USING (tenant_id = NULLIF(pg_catalog.current_setting('strata.tenant_id', true), '')::uuid);

CREATE FUNCTION core.probe(
    p_probe uuid,
    p_limit integer DEFAULT 10
)
    RETURNS integer
    STABLE
    SECURITY DEFINER
    SET search_path = ''
    LANGUAGE plpgsql
AS $$
BEGIN
    RETURN (SELECT count(*) FROM core.tb_probe AS p WHERE p.id = p_probe);
END
$$;
COMMENT ON FUNCTION core.probe(uuid, integer) IS 'A long comment is fine: COMMENT ON text is exempt from the line length limit, as it should be.';
REVOKE ALL ON FUNCTION core.probe(uuid, integer) FROM PUBLIC;

SELECT o.id,
       o.version AS v,
       coalesce(o.tags, '{}') AS tags
  FROM core.tb_probe AS o
 WHERE o.version <> 0
   AND o.id IS NOT NULL;
"""


def test_sqlfluff_accepts_strata_style(lint):
    assert lint(STRATA_STYLE) == set()


@pytest.mark.parametrize(("code", "text"), [
    ("CP01", "select 1;\n"),
    ("CP02", "SELECT 1 FROM Core.tb_probe;\n"),
    ("CP05", "CREATE TABLE core.t (a TEXT);\n"),
    ("LT01", "SELECT 1;   \n"),
    ("LT01", "SELECT a ,b FROM core.t;\n"),
    ("LT12", "SELECT 1;"),
    ("CV05", "SELECT 1 FROM core.t WHERE a = NULL;\n"),
    ("CV06", "SELECT 1\n"),
    ("AL04", "SELECT 1 FROM core.a AS x JOIN core.b AS x ON true;\n"),
])
def test_sqlfluff_catches(lint, code, text):
    assert code in lint(text)
