DROP TABLE tenancy.tb_identifier_alias;
DROP TABLE tenancy.tb_identifier_counter;
DROP TABLE tenancy.tb_user_role;
DROP TABLE tenancy.tb_role_permission;
DROP TABLE tenancy.tb_role;
DROP TABLE tenancy.tb_permission;
DROP TABLE tenancy.tb_user;
DROP TABLE tenancy.tb_organization;
