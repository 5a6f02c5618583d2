-- requires: 0002_audit_ledger

/* The ledger's own triggers, kept apart from their functions because the code layer is
   dropped file by file in reverse order: a trigger must go before the function it calls.

   guard_append_only*   (00_ledger.sql) UPDATE, DELETE and TRUNCATE of ledger tables need
                        strata.audit_maintenance = 'on'.
   seal_on_commit       (30_seal.sql) the first event of a transaction queues a seal attempt
                        that runs when the transaction commits; it seals when this session's
                        seal interval has passed. */

CREATE TRIGGER guard_append_only
BEFORE UPDATE OR DELETE ON audit.events
FOR EACH STATEMENT EXECUTE FUNCTION audit.tg_ledger__append_only();
CREATE TRIGGER guard_append_only_truncate
BEFORE TRUNCATE ON audit.events
FOR EACH STATEMENT EXECUTE FUNCTION audit.tg_ledger__append_only();
CREATE TRIGGER guard_append_only
BEFORE UPDATE OR DELETE ON audit.blocks
FOR EACH STATEMENT EXECUTE FUNCTION audit.tg_ledger__append_only();
CREATE TRIGGER guard_append_only_truncate
BEFORE TRUNCATE ON audit.blocks
FOR EACH STATEMENT EXECUTE FUNCTION audit.tg_ledger__append_only();
CREATE TRIGGER guard_append_only
BEFORE UPDATE OR DELETE ON audit.block_tenants
FOR EACH STATEMENT EXECUTE FUNCTION audit.tg_ledger__append_only();
CREATE TRIGGER guard_append_only_truncate
BEFORE TRUNCATE ON audit.block_tenants
FOR EACH STATEMENT EXECUTE FUNCTION audit.tg_ledger__append_only();

CREATE CONSTRAINT TRIGGER seal_on_commit
AFTER INSERT ON audit.events
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW
WHEN (new.tx_seq = 1)
EXECUTE FUNCTION audit.tg_events__seal_on_commit();
