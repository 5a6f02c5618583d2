-- Undo 0001. Roles stay (other Strata databases in this cluster may use them) and so does
-- pgcrypto (other code may use it).
DROP FUNCTION core.uuid_v7();
ALTER DEFAULT PRIVILEGES FOR ROLE strata_owner GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
DROP SCHEMA content;
DROP SCHEMA work;
DROP SCHEMA orders;
DROP SCHEMA tenancy;
DROP SCHEMA audit;
DROP SCHEMA app;
DROP SCHEMA core;
