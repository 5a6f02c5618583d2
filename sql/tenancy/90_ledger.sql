-- requires: 0003_tenancy

/* Every change to tenancy data is an audit event. Personal data (names, emails) stays out
   of the append-only ledger, which could never forget it: the ledger records that a user
   changed and which fields, not the person's details. */
SELECT audit.enable_tracking('tenancy.tb_organization');
SELECT audit.enable_tracking('tenancy.tb_user', p_exclude => ARRAY['email', 'name']);
SELECT audit.enable_tracking('tenancy.tb_role');
SELECT audit.enable_tracking('tenancy.tb_role_permission');
SELECT audit.enable_tracking('tenancy.tb_user_role');
