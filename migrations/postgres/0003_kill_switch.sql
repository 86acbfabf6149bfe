-- The SLO-linked kill switch: bindings from alert labels to flag actions,
-- Alertmanager receiver tokens, one receipt per alert delivery (the
-- idempotency key), and one record per action taken on a flag.

CREATE TABLE kill_switch_bindings (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    matchers TEXT NOT NULL,
    targets TEXT NOT NULL,
    on_resolved TEXT NOT NULL DEFAULT 'keep',
    cooldown_seconds BIGINT NOT NULL DEFAULT 300,
    dry_run BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE alertmanager_receivers (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE alert_receipts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    receiver TEXT NOT NULL,
    labels TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    outcome TEXT NOT NULL DEFAULT '[]',
    UNIQUE (fingerprint, status, starts_at)
);

CREATE TABLE kill_records (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flag_set TEXT NOT NULL,
    flag TEXT NOT NULL,
    environment TEXT NOT NULL,
    action TEXT NOT NULL,
    binding TEXT,
    fingerprint TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    labels TEXT NOT NULL,
    receiver TEXT NOT NULL,
    at BIGINT NOT NULL,
    dry_run BIGINT NOT NULL DEFAULT 0,
    config_before TEXT NOT NULL,
    config_after TEXT NOT NULL,
    config_version_after BIGINT NOT NULL,
    on_resolved TEXT NOT NULL,
    cooldown_seconds BIGINT NOT NULL,
    resolved_at BIGINT,
    restore_due_at BIGINT,
    restored_at BIGINT,
    restored_by TEXT,
    restore_outcome TEXT
);

CREATE INDEX kill_records_flag ON kill_records (flag_set, flag, environment, id);
CREATE INDEX kill_records_alert ON kill_records (fingerprint, starts_at);
CREATE INDEX kill_records_due ON kill_records (restore_due_at);
