-- RAP Appliance: initial schema (SQLite >= 3.38; STRICT tables, JSON built in).
--
-- Conventions, relied on by every query:
-- * ids are TEXT UUIDs (v7), canonical lowercase hyphenated; v7 sorts by
--   creation time as text, so (..., id) works as a keyset-pagination cursor.
-- * timestamps are TEXT, RFC 3339 UTC, always exactly
--   'YYYY-MM-DDTHH:MM:SS.ffffffZ' (27 chars, microseconds, literal Z), so
--   comparing and sorting them as text is comparing them as instants. The
--   CHECKs reject any other shape (e.g. '+00:00' or missing fraction).
--   There are no timestamp DEFAULTs: the application supplies every value
--   (SQLite's own clock only formats milliseconds).
-- * booleans are INTEGER 0/1; JSON columns are TEXT holding a JSON object.
-- * every FK says what happens on delete: CASCADE for owned children,
--   RESTRICT for history that must not silently vanish, SET NULL for
--   optional links. audit_events has no FKs at all: it must outlive
--   whatever it mentions.
-- * rows carrying history (users, resources, sessions) are disabled or
--   soft-deleted by the application, not deleted; RESTRICT enforces that.

-- ---------------------------------------------------------------------------
-- Installation and identity
-- ---------------------------------------------------------------------------

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    -- NOCASE folds ASCII only: the service also trims and lowercases emails.
    email         TEXT NOT NULL COLLATE NOCASE UNIQUE CHECK (length(email) BETWEEN 3 AND 320),
    -- Argon2id PHC string; NULL = no local password (future LDAP/OIDC users).
    password_hash TEXT,
    display_name  TEXT NOT NULL,
    -- Informational only in strict mode: power needs a signed platform_role_grants row.
    platform_role TEXT CHECK (platform_role IN ('platform_admin', 'platform_recovery_admin')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at    TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE INDEX idx_users_platform_role ON users (platform_role) WHERE platform_role IS NOT NULL;

-- Exactly one row, created on first start.
CREATE TABLE installation (
    singleton               INTEGER PRIMARY KEY NOT NULL DEFAULT 1 CHECK (singleton = 1),
    installation_id         TEXT NOT NULL UNIQUE CHECK (length(installation_id) = 36 AND installation_id NOT GLOB '*[^0-9a-f-]*'),
    authority_mode          TEXT NOT NULL CHECK (authority_mode IN ('strict', 'legacy')),
    -- set once, guarded by "WHERE bootstrapped_at IS NULL", so concurrent
    -- bootstrap calls cannot both win.
    bootstrapped_at         TEXT CHECK (bootstrapped_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    bootstrap_owner_user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at              TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE INDEX idx_installation_owner ON installation (bootstrap_owner_user_id);

-- A grant is effective only while its signature verifies against the
-- installation key over (id, user_id, role, installation_id, granted_at).
-- Revoking must also drop the signature (enforced below), so that clearing
-- revoked_at by hand cannot bring a grant back.
CREATE TABLE platform_role_grants (
    id              TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('platform_admin', 'platform_recovery_admin')),
    installation_id TEXT NOT NULL,
    signature       BLOB,
    signing_key_id  TEXT NOT NULL,
    granted_at      TEXT NOT NULL CHECK (granted_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    revoked_at      TEXT CHECK (revoked_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    CHECK ((revoked_at IS NULL) = (signature IS NOT NULL))
) STRICT;

CREATE UNIQUE INDEX uq_platform_role_grants_active
    ON platform_role_grants (user_id, role) WHERE revoked_at IS NULL;
CREATE INDEX idx_platform_role_grants_user ON platform_role_grants (user_id);

-- Ids are chosen by the client (API: "device": {"id"?}) and are global, so
-- the service must check user_id before reusing one.
CREATE TABLE devices (
    id           TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT,
    trusted      INTEGER NOT NULL DEFAULT 0 CHECK (trusted IN (0, 1)),
    trusted_at   TEXT CHECK (trusted_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    created_at   TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    last_seen_at TEXT CHECK (last_seen_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    -- revoked devices stay for history; their auth sessions are revoked.
    revoked_at   TEXT CHECK (revoked_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE INDEX idx_devices_user ON devices (user_id, created_at);

-- One auth session = one login = one refresh-token family.
CREATE TABLE auth_sessions (
    id            TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id     TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    last_used_at  TEXT NOT NULL CHECK (last_used_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    expires_at    TEXT NOT NULL CHECK (expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    revoked_at    TEXT CHECK (revoked_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    -- e.g. logout, refresh_token_reused, device_revoked, admin; free text so
    -- new reasons need no table rebuild.
    revoke_reason TEXT,
    ip            TEXT,
    user_agent    TEXT,
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
) STRICT;

CREATE INDEX idx_auth_sessions_user ON auth_sessions (user_id, created_at);
CREATE INDEX idx_auth_sessions_device ON auth_sessions (device_id);
CREATE INDEX idx_auth_sessions_live ON auth_sessions (expires_at) WHERE revoked_at IS NULL;

-- Only SHA-256 hashes of the 256-bit tokens are stored. A token with
-- rotated_at set that is presented again is reuse: revoke its auth session.
CREATE TABLE refresh_tokens (
    id              TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    auth_session_id TEXT NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    token_hash      BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    parent_id       TEXT REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    created_at      TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    expires_at      TEXT NOT NULL CHECK (expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    -- when a successor was issued (the token stops working)
    rotated_at      TEXT CHECK (rotated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    -- last presentation, including a rejected reuse attempt
    used_at         TEXT CHECK (used_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

-- Unique: two racing refreshes of one token cannot both mint a successor.
CREATE UNIQUE INDEX uq_refresh_tokens_parent ON refresh_tokens (parent_id);
CREATE INDEX idx_refresh_tokens_auth_session ON refresh_tokens (auth_session_id);

-- Durable throttling window, so a restart does not reset the counters. No FK
-- to users on purpose: unknown emails must be throttled the same way.
CREATE TABLE login_attempts (
    id           TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    email        TEXT NOT NULL COLLATE NOCASE,
    ip           TEXT,
    succeeded    INTEGER NOT NULL CHECK (succeeded IN (0, 1)),
    attempted_at TEXT NOT NULL CHECK (attempted_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE INDEX idx_login_attempts_email ON login_attempts (email, attempted_at);
CREATE INDEX idx_login_attempts_ip ON login_attempts (ip, attempted_at);
CREATE INDEX idx_login_attempts_time ON login_attempts (attempted_at);

-- ---------------------------------------------------------------------------
-- Organizations, roles, memberships, identity sources
-- ---------------------------------------------------------------------------

CREATE TABLE organizations (
    id         TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    slug       TEXT NOT NULL UNIQUE
               CHECK (length(slug) BETWEEN 1 AND 63 AND slug NOT GLOB '*[^a-z0-9-]*'),
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

-- Reference data, so memberships cannot carry a misspelled role. What each
-- role may do lives in the one authorization function, not here.
CREATE TABLE organization_roles (
    role        TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL
) STRICT;

INSERT INTO organization_roles (role, description) VALUES
    ('org_owner',    'Owns the organization; full control'),
    ('org_admin',    'Manages resources, memberships and all sessions of the organization'),
    ('org_operator', 'Operates own sessions; no admin actions'),
    ('org_member',   'Uses resources through own sessions; no admin actions'),
    ('org_viewer',   'Read-only access within the organization');

CREATE TABLE organization_memberships (
    id              TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            TEXT NOT NULL REFERENCES organization_roles (role) ON DELETE RESTRICT,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at      TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at      TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    -- the 000006-style backfill relies on this to stay idempotent
    UNIQUE (organization_id, user_id)
) STRICT;

CREATE INDEX idx_organization_memberships_user ON organization_memberships (user_id);
CREATE INDEX idx_organization_memberships_role ON organization_memberships (role);

-- Model only for now. config must not hold secrets in clear (bind passwords,
-- client secrets): those will go through the secret store.
CREATE TABLE identity_sources (
    id              TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('local', 'ldap', 'oidc')),
    name            TEXT NOT NULL,
    config          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config) AND json_type(config) = 'object'),
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at      TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at      TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE INDEX idx_identity_sources_org ON identity_sources (organization_id, id);

-- An external subject maps to a user; an external group maps to an org role
-- (of the source's organization). A subject may also carry a role.
CREATE TABLE identity_mappings (
    id                 TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    identity_source_id TEXT NOT NULL REFERENCES identity_sources (id) ON DELETE CASCADE,
    external_kind      TEXT NOT NULL CHECK (external_kind IN ('subject', 'group')),
    external_id        TEXT NOT NULL,
    user_id            TEXT REFERENCES users (id) ON DELETE CASCADE,
    role               TEXT REFERENCES organization_roles (role) ON DELETE RESTRICT,
    created_at         TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at         TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    UNIQUE (identity_source_id, external_kind, external_id),
    CHECK (external_kind = 'subject' OR user_id IS NULL),
    CHECK (user_id IS NOT NULL OR role IS NOT NULL)
) STRICT;

CREATE INDEX idx_identity_mappings_user ON identity_mappings (user_id);
CREATE INDEX idx_identity_mappings_role ON identity_mappings (role);

-- ---------------------------------------------------------------------------
-- Resources, policies, secrets
-- ---------------------------------------------------------------------------

CREATE TABLE resources (
    id                            TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    -- RESTRICT: resources are soft-deleted and sessions keep pointing at them.
    organization_id               TEXT NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    name                          TEXT NOT NULL,
    protocol                      TEXT NOT NULL CHECK (protocol IN ('rdp', 'vnc', 'ssh')),
    host                          TEXT NOT NULL CHECK (length(host) > 0),
    port                          INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    certificate_verification_mode TEXT NOT NULL DEFAULT 'strict'
                                  CHECK (certificate_verification_mode IN ('strict', 'ignore')),
    -- optional pin of the server certificate (e.g. 'sha256:<hex>')
    certificate_fingerprint       TEXT,
    -- may hold plaintext credentials only outside production (guarded in code)
    metadata                      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    -- opaque reference into the secret store (today: resource_secrets);
    -- no FK so that an external vault reference stays possible.
    secret_ref                    TEXT,
    created_by_user_id            TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at                    TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at                    TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    deleted_at                    TEXT CHECK (deleted_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    -- target of remote_sessions' composite FK (session org = resource org)
    UNIQUE (id, organization_id)
) STRICT;

CREATE INDEX idx_resources_org ON resources (organization_id, id);
CREATE INDEX idx_resources_live ON resources (organization_id, name) WHERE deleted_at IS NULL;
CREATE INDEX idx_resources_created_by ON resources (created_by_user_id);

-- One row per resource, written in the same transaction as the resource.
-- The *_enabled columns are the seed's legacy flags, derived so they can
-- never disagree with the modes; runtime decisions use the modes.
CREATE TABLE resource_policies (
    resource_id           TEXT PRIMARY KEY NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    clipboard_mode        TEXT NOT NULL DEFAULT 'disabled'
                          CHECK (clipboard_mode IN ('disabled', 'client_to_server', 'server_to_client', 'bidirectional')),
    file_transfer_mode    TEXT NOT NULL DEFAULT 'disabled'
                          CHECK (file_transfer_mode IN ('disabled', 'client_to_server', 'server_to_client', 'bidirectional')),
    clipboard_enabled     INTEGER GENERATED ALWAYS AS (clipboard_mode <> 'disabled') VIRTUAL,
    file_transfer_enabled INTEGER GENERATED ALWAYS AS (file_transfer_mode <> 'disabled') VIRTUAL,
    created_at            TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at            TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

-- AES-256-GCM with the resource id as associated data, so a ciphertext
-- copied onto another resource fails to decrypt. ciphertext includes the tag.
CREATE TABLE resource_secrets (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    resource_id TEXT NOT NULL UNIQUE REFERENCES resources (id) ON DELETE CASCADE,
    key_id      TEXT NOT NULL,
    nonce       BLOB NOT NULL CHECK (length(nonce) = 12),
    ciphertext  BLOB NOT NULL CHECK (length(ciphertext) > 16),
    created_at  TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at  TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    -- last re-encryption (new value or new key); NULL if never rotated
    rotated_at  TEXT CHECK (rotated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

-- re-encryption sweep: find records still under a retired key
CREATE INDEX idx_resource_secrets_key ON resource_secrets (key_id);

-- ---------------------------------------------------------------------------
-- Nodes and workers
-- ---------------------------------------------------------------------------

CREATE TABLE nodes (
    id            TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    name          TEXT NOT NULL UNIQUE,
    hostname      TEXT,
    -- e.g. pending, online, offline, maintenance, decommissioned
    status        TEXT NOT NULL DEFAULT 'pending',
    agent_version TEXT,
    os            TEXT,
    arch          TEXT,
    metadata      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    created_at    TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at    TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    last_seen_at  TEXT CHECK (last_seen_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

-- What a node can do (e.g. rdp-worker, gateway, ironrdp), as reported by its agent.
CREATE TABLE node_capabilities (
    node_id     TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    capability  TEXT NOT NULL,
    version     TEXT,
    details     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details) AND json_type(details) = 'object'),
    reported_at TEXT NOT NULL CHECK (reported_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    PRIMARY KEY (node_id, capability)
) STRICT;

-- Desired (enabled) versus reported (status) state of each service on a node.
CREATE TABLE node_services (
    node_id    TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    service    TEXT NOT NULL,
    enabled    INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    status     TEXT NOT NULL DEFAULT 'unknown',
    version    TEXT,
    details    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details) AND json_type(details) = 'object'),
    updated_at TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    PRIMARY KEY (node_id, service)
) STRICT;

CREATE TABLE node_update_policies (
    node_id            TEXT PRIMARY KEY NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    channel            TEXT NOT NULL DEFAULT 'stable',
    auto_update        INTEGER NOT NULL DEFAULT 0 CHECK (auto_update IN (0, 1)),
    -- pin; NULL = latest of the channel
    target_version     TEXT,
    -- e.g. {"days":["sat"],"start":"02:00","duration_minutes":120}
    maintenance_window TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(maintenance_window) AND json_type(maintenance_window) = 'object'),
    updated_at         TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

-- One row per install slot (e.g. 'a'/'b') so an update can roll back to the
-- other slot.
CREATE TABLE node_partition_states (
    node_id        TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    partition_name TEXT NOT NULL,
    -- e.g. active, standby, pending, failed
    state          TEXT NOT NULL,
    version        TEXT,
    details        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details) AND json_type(details) = 'object'),
    updated_at     TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    PRIMARY KEY (node_id, partition_name)
) STRICT;

CREATE TABLE node_agent_update_runs (
    id                   TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    node_id              TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    from_version         TEXT,
    to_version           TEXT NOT NULL,
    status               TEXT NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'rolled_back', 'cancelled')),
    requested_by_user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    error                TEXT,
    details              TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details) AND json_type(details) = 'object'),
    created_at           TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    started_at           TEXT CHECK (started_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    finished_at          TEXT CHECK (finished_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE INDEX idx_node_agent_update_runs_node ON node_agent_update_runs (node_id, created_at);
CREATE INDEX idx_node_agent_update_runs_user ON node_agent_update_runs (requested_by_user_id);

-- Worker rows are kept (status offline) rather than deleted, so sessions
-- keep naming the worker that ran them.
CREATE TABLE workers (
    id                TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    -- e.g. rdp (IronRDP), test (scripted); later vnc, ssh
    kind              TEXT NOT NULL,
    name              TEXT NOT NULL,
    node_id           TEXT REFERENCES nodes (id) ON DELETE SET NULL,
    capacity          INTEGER NOT NULL CHECK (capacity >= 0),
    status            TEXT NOT NULL DEFAULT 'online' CHECK (status IN ('online', 'draining', 'offline')),
    registered_at     TEXT NOT NULL CHECK (registered_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    last_heartbeat_at TEXT CHECK (last_heartbeat_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE INDEX idx_workers_node ON workers (node_id);
CREATE INDEX idx_workers_status ON workers (status, kind);

-- ---------------------------------------------------------------------------
-- Remote sessions
-- ---------------------------------------------------------------------------

CREATE TABLE remote_sessions (
    id               TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    resource_id      TEXT NOT NULL,
    owner_user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    device_id        TEXT REFERENCES devices (id) ON DELETE SET NULL,
    state            TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'starting', 'active', 'detached', 'terminated', 'failed')),
    worker_id        TEXT REFERENCES workers (id) ON DELETE SET NULL,
    width            INTEGER CHECK (width BETWEEN 1 AND 65535),
    height           INTEGER CHECK (height BETWEEN 1 AND 65535),
    failure_reason   TEXT,
    -- never credentials: only secret_ref and non-secret assignment facts
    metadata         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    created_at       TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at       TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    started_at       TEXT CHECK (started_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    ended_at         TEXT CHECK (ended_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    last_attached_at TEXT CHECK (last_attached_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    detached_at      TEXT CHECK (detached_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    -- composite FK: a session's organization is always its resource's, so
    -- authorizing against the session org equals authorizing against the
    -- resource org. RESTRICT also blocks moving a used resource to another org.
    FOREIGN KEY (resource_id, organization_id)
        REFERENCES resources (id, organization_id) ON DELETE RESTRICT ON UPDATE RESTRICT,
    CHECK (failure_reason IS NULL OR state = 'failed'),
    CHECK ((state IN ('terminated', 'failed')) = (ended_at IS NOT NULL))
) STRICT;

CREATE INDEX idx_remote_sessions_org_state ON remote_sessions (organization_id, state, created_at);
CREATE INDEX idx_remote_sessions_org ON remote_sessions (organization_id, id);
CREATE INDEX idx_remote_sessions_resource ON remote_sessions (resource_id, organization_id);
CREATE INDEX idx_remote_sessions_owner ON remote_sessions (owner_user_id, created_at);
CREATE INDEX idx_remote_sessions_device ON remote_sessions (device_id);
CREATE INDEX idx_remote_sessions_worker ON remote_sessions (worker_id);
-- restart recovery and detached-session expiry: WHERE state IN (...)
CREATE INDEX idx_remote_sessions_state ON remote_sessions (state, detached_at);

CREATE TABLE session_attachments (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    session_id  TEXT NOT NULL REFERENCES remote_sessions (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    device_id   TEXT REFERENCES devices (id) ON DELETE SET NULL,
    role        TEXT NOT NULL CHECK (role IN ('controller', 'viewer')),
    attached_at TEXT NOT NULL CHECK (attached_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    detached_at TEXT CHECK (detached_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    -- e.g. detached, taken_over, transport_closed, terminated, failed
    end_reason  TEXT,
    CHECK (end_reason IS NULL OR detached_at IS NOT NULL)
) STRICT;

-- At most one open controller per session: a takeover must end the old
-- controller attachment in the same transaction that opens the new one.
CREATE UNIQUE INDEX uq_session_attachments_controller
    ON session_attachments (session_id) WHERE role = 'controller' AND detached_at IS NULL;
CREATE INDEX idx_session_attachments_session ON session_attachments (session_id, attached_at);
CREATE INDEX idx_session_attachments_user ON session_attachments (user_id, attached_at);
CREATE INDEX idx_session_attachments_device ON session_attachments (device_id);

-- Durable mirror of the live lease, rebuilt or failed on restart.
CREATE TABLE worker_leases (
    id             TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    worker_id      TEXT NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    session_id     TEXT NOT NULL REFERENCES remote_sessions (id) ON DELETE CASCADE,
    acquired_at    TEXT NOT NULL CHECK (acquired_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    expires_at     TEXT NOT NULL CHECK (expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    renewed_at     TEXT CHECK (renewed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    released_at    TEXT CHECK (released_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    -- e.g. session_ended, expired, worker_failed
    release_reason TEXT
) STRICT;

CREATE UNIQUE INDEX uq_worker_leases_open_session
    ON worker_leases (session_id) WHERE released_at IS NULL;
CREATE INDEX idx_worker_leases_session ON worker_leases (session_id);
CREATE INDEX idx_worker_leases_worker ON worker_leases (worker_id, released_at);
CREATE INDEX idx_worker_leases_expiry ON worker_leases (expires_at) WHERE released_at IS NULL;

-- ---------------------------------------------------------------------------
-- Audit
-- ---------------------------------------------------------------------------

-- Append-only. Deliberately no FKs: events outlive users, sessions and
-- organizations they mention. prev_hash/hash are reserved for the future
-- hash chain (all writes go through one place so it can be added there).
CREATE TABLE audit_events (
    id              TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36 AND id NOT GLOB '*[^0-9a-f-]*'),
    organization_id TEXT,
    session_id      TEXT,
    actor_user_id   TEXT,
    -- e.g. user, system, worker, node_agent, anonymous
    actor_kind      TEXT NOT NULL,
    action          TEXT NOT NULL,
    target_kind     TEXT,
    target_id       TEXT,
    outcome         TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    details         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details) AND json_type(details) = 'object'),
    trace_id        TEXT,
    ip              TEXT,
    occurred_at     TEXT NOT NULL CHECK (occurred_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    prev_hash       TEXT,
    hash            TEXT
) STRICT;

-- (time, id) pairs are the paging cursor
CREATE INDEX idx_audit_events_org_time ON audit_events (organization_id, occurred_at, id);
CREATE INDEX idx_audit_events_session_time ON audit_events (session_id, occurred_at, id)
    WHERE session_id IS NOT NULL;
CREATE INDEX idx_audit_events_actor_time ON audit_events (actor_user_id, occurred_at, id)
    WHERE actor_user_id IS NOT NULL;
CREATE INDEX idx_audit_events_time ON audit_events (occurred_at, id);
