-- depends: 0001_foundation
-- 0003 tenancy: organizations (the tenants), users, role-based access control, and the
-- framework state every tenant table shares: identifier counters and retired identifiers.
--
-- Every tenant table carries the triple ID (pk_<entity> internal, id public, identifier for
-- people), leads its primary key and unique keys with tenant_id, and points at other tenant
-- rows only through composite (tenant_id, fk_<entity>) foreign keys. Policies, triggers and
-- grants live in sql/tenancy/ and sql/core/.

CREATE TABLE tenancy.tb_organization (
    pk_organization   bigint GENERATED ALWAYS AS IDENTITY,
    id                uuid NOT NULL DEFAULT core.uuid_v7(),
    -- The organization is its own tenant: tenant_id = id keeps one RLS rule for every table.
    tenant_id         uuid NOT NULL,
    identifier        text NOT NULL,
    name              text NOT NULL,
    slug              text NOT NULL,
    subscription_tier text NOT NULL DEFAULT 'free',
    settings          jsonb NOT NULL DEFAULT '{}',
    status            text NOT NULL DEFAULT 'active',
    version           integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by        uuid,
    updated_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by        uuid,
    CONSTRAINT tb_organization_pkey PRIMARY KEY (tenant_id, pk_organization),
    CONSTRAINT tb_organization_tenant_key UNIQUE (tenant_id),
    CONSTRAINT tb_organization_id_key UNIQUE (tenant_id, id),
    CONSTRAINT tb_organization_identifier_key UNIQUE (tenant_id, identifier),
    CONSTRAINT tb_organization_slug_key UNIQUE (slug),
    CONSTRAINT tb_organization_is_own_tenant CHECK (tenant_id = id),
    CONSTRAINT tb_organization_identifier_is_slug CHECK (identifier = slug),
    CONSTRAINT tb_organization_slug_format CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    CONSTRAINT tb_organization_tier CHECK (subscription_tier IN ('free', 'team', 'business', 'enterprise')),
    CONSTRAINT tb_organization_status CHECK (status IN ('active', 'suspended')),
    CONSTRAINT tb_organization_settings_is_object CHECK (pg_catalog.jsonb_typeof(settings) = 'object')
);
COMMENT ON TABLE tenancy.tb_organization IS 'A tenant: an organization with its slug, subscription tier and settings.';
COMMENT ON CONSTRAINT tb_organization_slug_key ON tenancy.tb_organization IS
    'Global: a slug names one tenant in the whole database, so it is resolvable before a tenant context exists.';

CREATE TABLE tenancy.tb_user (
    pk_user     bigint GENERATED ALWAYS AS IDENTITY,
    id          uuid NOT NULL DEFAULT core.uuid_v7(),
    tenant_id   uuid NOT NULL,
    identifier  text NOT NULL,
    email       text NOT NULL,
    name        text NOT NULL,
    status      text NOT NULL DEFAULT 'active',
    preferences jsonb NOT NULL DEFAULT '{}',
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by  uuid,
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by  uuid,
    CONSTRAINT tb_user_pkey PRIMARY KEY (tenant_id, pk_user),
    CONSTRAINT tb_user_id_key UNIQUE (tenant_id, id),
    CONSTRAINT tb_user_identifier_key UNIQUE (tenant_id, identifier),
    CONSTRAINT tb_user_email_key UNIQUE (tenant_id, email),
    CONSTRAINT tb_user_email_is_normalized CHECK (email = pg_catalog.lower(email)),
    CONSTRAINT tb_user_status CHECK (status IN ('active', 'deactivated')),
    CONSTRAINT tb_user_preferences_is_object CHECK (pg_catalog.jsonb_typeof(preferences) = 'object'),
    CONSTRAINT tb_user_organization_fkey FOREIGN KEY (tenant_id)
        REFERENCES tenancy.tb_organization (tenant_id)
);
COMMENT ON TABLE tenancy.tb_user IS 'A person who belongs to one organization; email unique per tenant, stored lower-case.';

-- Permissions are a global catalog of codes; which roles hold them is per tenant.
CREATE TABLE tenancy.tb_permission (
    code          text PRIMARY KEY,
    description   text NOT NULL,
    -- The seeded roles of a new tenant that receive this permission.
    default_roles text[] NOT NULL DEFAULT '{}',
    CONSTRAINT tb_permission_code_format CHECK (code ~ '^[a-z_]+\.[a-z_]+$')
);
COMMENT ON TABLE tenancy.tb_permission IS 'Every permission code Strata checks, e.g. orders.create; not tenant data.';

CREATE TABLE tenancy.tb_role (
    pk_role     bigint GENERATED ALWAYS AS IDENTITY,
    id          uuid NOT NULL DEFAULT core.uuid_v7(),
    tenant_id   uuid NOT NULL,
    identifier  text NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    -- admin holds every permission, including ones added by later migrations.
    grants_all  boolean NOT NULL DEFAULT false,
    is_system   boolean NOT NULL DEFAULT false,
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by  uuid,
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by  uuid,
    CONSTRAINT tb_role_pkey PRIMARY KEY (tenant_id, pk_role),
    CONSTRAINT tb_role_id_key UNIQUE (tenant_id, id),
    CONSTRAINT tb_role_identifier_key UNIQUE (tenant_id, identifier),
    CONSTRAINT tb_role_identifier_format CHECK (identifier ~ '^[a-z][a-z0-9_]{0,62}$'),
    CONSTRAINT tb_role_organization_fkey FOREIGN KEY (tenant_id)
        REFERENCES tenancy.tb_organization (tenant_id)
);
COMMENT ON TABLE tenancy.tb_role IS 'A role of one tenant (admin, member, viewer, or the tenant''s own); identifier is its key.';

CREATE TABLE tenancy.tb_role_permission (
    tenant_id  uuid NOT NULL,
    fk_role    bigint NOT NULL,
    permission text NOT NULL,
    CONSTRAINT tb_role_permission_pkey PRIMARY KEY (tenant_id, fk_role, permission),
    CONSTRAINT tb_role_permission_role_fkey FOREIGN KEY (tenant_id, fk_role)
        REFERENCES tenancy.tb_role (tenant_id, pk_role) ON DELETE CASCADE,
    CONSTRAINT tb_role_permission_permission_fkey FOREIGN KEY (permission)
        REFERENCES tenancy.tb_permission (code) ON DELETE CASCADE
);
COMMENT ON TABLE tenancy.tb_role_permission IS 'Which permissions a tenant''s role holds.';

CREATE TABLE tenancy.tb_user_role (
    tenant_id  uuid NOT NULL,
    fk_user    bigint NOT NULL,
    fk_role    bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by uuid,
    CONSTRAINT tb_user_role_pkey PRIMARY KEY (tenant_id, fk_user, fk_role),
    CONSTRAINT tb_user_role_user_fkey FOREIGN KEY (tenant_id, fk_user)
        REFERENCES tenancy.tb_user (tenant_id, pk_user) ON DELETE CASCADE,
    CONSTRAINT tb_user_role_role_fkey FOREIGN KEY (tenant_id, fk_role)
        REFERENCES tenancy.tb_role (tenant_id, pk_role) ON DELETE CASCADE
);
CREATE INDEX tb_user_role_role_idx ON tenancy.tb_user_role (tenant_id, fk_role);
COMMENT ON TABLE tenancy.tb_user_role IS 'Role grants: which roles each user of a tenant holds.';

-- Gapless per-tenant counters for identifiers such as USR-000042 or ORD-000042. A counter
-- row is locked from the increment until commit, so numbers never repeat or skip; inserts of
-- the same kind in the same tenant queue on it only for that short tail of the transaction.
CREATE TABLE tenancy.tb_identifier_counter (
    tenant_id  uuid NOT NULL,
    scope      text NOT NULL,
    last_value bigint NOT NULL,
    CONSTRAINT tb_identifier_counter_pkey PRIMARY KEY (tenant_id, scope)
);
COMMENT ON TABLE tenancy.tb_identifier_counter IS 'The last number handed out per tenant and identifier scope (gapless).';

-- When an identifier is recalculated (a task moves project, a SKU changes) the old one keeps
-- resolving to the same entity, until another entity takes it as its current identifier.
CREATE TABLE tenancy.tb_identifier_alias (
    tenant_id   uuid NOT NULL,
    entity      text NOT NULL,
    identifier  text NOT NULL,
    id          uuid NOT NULL,
    retired_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT tb_identifier_alias_pkey PRIMARY KEY (tenant_id, entity, identifier)
);
COMMENT ON TABLE tenancy.tb_identifier_alias IS 'Former identifiers of entities, still accepted wherever a reference is.';

INSERT INTO tenancy.tb_permission (code, description, default_roles) VALUES
    ('users.read', 'See the users of the organization.', '{member,viewer}'),
    ('users.create', 'Invite or create users.', '{}'),
    ('users.update', 'Change users'' names, emails and preferences.', '{}'),
    ('users.deactivate', 'Deactivate users.', '{}'),
    ('roles.read', 'See roles and their permissions.', '{member,viewer}'),
    ('roles.grant', 'Grant and revoke roles.', '{}');
