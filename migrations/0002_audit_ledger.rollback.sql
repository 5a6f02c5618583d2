-- Undo 0002: the ledger's tables, and with them every event, block and signing key, and the
-- capture trigger functions (tables still tracked must be untracked first).
DROP FUNCTION audit.tg_tracked__capture_truncate();
DROP FUNCTION audit.tg_tracked__capture_change();
DROP TABLE audit.events;
DROP TABLE audit.block_tenants;
DROP TABLE audit.blocks;
DROP TABLE audit.signing_keys;
