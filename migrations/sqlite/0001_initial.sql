-- Environments, flag sets, flags with per-environment configuration,
-- segments, API tokens and the audit log.

CREATE TABLE environments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);

CREATE TABLE flag_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);

CREATE TABLE segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    flag_set_id BIGINT NOT NULL REFERENCES flag_sets (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    rule TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    updated_at BIGINT NOT NULL,
    UNIQUE (flag_set_id, key)
);

CREATE TABLE flags (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    flag_set_id BIGINT NOT NULL REFERENCES flag_sets (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    kind TEXT NOT NULL DEFAULT 'release',
    stage TEXT NOT NULL DEFAULT 'new',
    expires_at BIGINT,
    metadata TEXT NOT NULL DEFAULT '{}',
    version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_evaluated_at BIGINT,
    UNIQUE (flag_set_id, key)
);

CREATE TABLE flag_configs (
    flag_id BIGINT NOT NULL REFERENCES flags (id) ON DELETE CASCADE,
    environment_id BIGINT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    variants TEXT NOT NULL,
    default_variant TEXT,
    targeting TEXT,
    version BIGINT NOT NULL DEFAULT 1,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (flag_id, environment_id)
);

CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    environments TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_key TEXT NOT NULL,
    environment TEXT,
    before_value TEXT,
    after_value TEXT,
    comment TEXT
);

CREATE INDEX audit_log_resource ON audit_log (resource_type, resource_key, id);
