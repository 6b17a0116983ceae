-- sluice schema, version 1. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Money is DOUBLE PRECISION (USD), counts BIGINT, flags INTEGER 0/1, timestamps ISO-8601 UTC
-- text ("2026-11-22T01:02:03Z"), JSON as text. Keys are stored only as the SHA-256 hex of the
-- whole key ("sk-..."), as LiteLLM does.

CREATE TABLE IF NOT EXISTS sluice_organizations (
    organization_id     TEXT PRIMARY KEY,
    organization_alias  TEXT,
    models              TEXT NOT NULL DEFAULT '[]',
    max_budget          DOUBLE PRECISION,
    spend               DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_duration     TEXT,
    budget_reset_at     TEXT,
    rpm_limit           BIGINT,
    tpm_limit           BIGINT,
    max_parallel_requests BIGINT,
    metadata            TEXT NOT NULL DEFAULT '{}',
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    created_by          TEXT,
    updated_by          TEXT
);

CREATE TABLE IF NOT EXISTS sluice_teams (
    team_id             TEXT PRIMARY KEY,
    team_alias          TEXT,
    organization_id     TEXT,
    models              TEXT NOT NULL DEFAULT '[]',
    max_budget          DOUBLE PRECISION,
    spend               DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_duration     TEXT,
    budget_reset_at     TEXT,
    rpm_limit           BIGINT,
    tpm_limit           BIGINT,
    max_parallel_requests BIGINT,
    members_with_roles  TEXT NOT NULL DEFAULT '[]',
    metadata            TEXT NOT NULL DEFAULT '{}',
    blocked             INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    created_by          TEXT,
    updated_by          TEXT
);

CREATE TABLE IF NOT EXISTS sluice_users (
    user_id             TEXT PRIMARY KEY,
    user_email          TEXT,
    user_alias          TEXT,
    user_role           TEXT NOT NULL DEFAULT 'internal_user',
    teams               TEXT NOT NULL DEFAULT '[]',
    organization_id     TEXT,
    models              TEXT NOT NULL DEFAULT '[]',
    max_budget          DOUBLE PRECISION,
    spend               DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_duration     TEXT,
    budget_reset_at     TEXT,
    rpm_limit           BIGINT,
    tpm_limit           BIGINT,
    max_parallel_requests BIGINT,
    metadata            TEXT NOT NULL DEFAULT '{}',
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS sluice_keys (
    token               TEXT PRIMARY KEY,
    key_name            TEXT,
    key_alias           TEXT,
    spend               DOUBLE PRECISION NOT NULL DEFAULT 0,
    max_budget          DOUBLE PRECISION,
    soft_budget         DOUBLE PRECISION,
    budget_duration     TEXT,
    budget_reset_at     TEXT,
    expires             TEXT,
    models              TEXT NOT NULL DEFAULT '[]',
    aliases             TEXT NOT NULL DEFAULT '{}',
    metadata            TEXT NOT NULL DEFAULT '{}',
    rpm_limit           BIGINT,
    tpm_limit           BIGINT,
    max_parallel_requests BIGINT,
    team_id             TEXT,
    user_id             TEXT,
    organization_id     TEXT,
    blocked             INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    created_by          TEXT,
    updated_by          TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS sluice_keys_alias ON sluice_keys (key_alias);
CREATE INDEX IF NOT EXISTS sluice_keys_user ON sluice_keys (user_id);
CREATE INDEX IF NOT EXISTS sluice_keys_team ON sluice_keys (team_id);

CREATE TABLE IF NOT EXISTS sluice_spend_logs (
    request_id          TEXT PRIMARY KEY,
    call_type           TEXT NOT NULL,
    api_key             TEXT,
    spend               DOUBLE PRECISION NOT NULL DEFAULT 0,
    cost_known          INTEGER NOT NULL DEFAULT 1,
    total_tokens        BIGINT NOT NULL DEFAULT 0,
    prompt_tokens       BIGINT NOT NULL DEFAULT 0,
    completion_tokens   BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens   BIGINT NOT NULL DEFAULT 0,
    cache_creation_tokens BIGINT NOT NULL DEFAULT 0,
    start_time          TEXT NOT NULL,
    end_time            TEXT NOT NULL,
    model               TEXT,
    model_group         TEXT,
    model_id            TEXT,
    custom_llm_provider TEXT,
    user_id             TEXT,
    team_id             TEXT,
    organization_id     TEXT,
    end_user            TEXT,
    status              TEXT NOT NULL DEFAULT 'success',
    metadata            TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS sluice_spend_logs_key_time ON sluice_spend_logs (api_key, start_time);
CREATE INDEX IF NOT EXISTS sluice_spend_logs_time ON sluice_spend_logs (start_time);
CREATE INDEX IF NOT EXISTS sluice_spend_logs_user ON sluice_spend_logs (user_id);
CREATE INDEX IF NOT EXISTS sluice_spend_logs_team ON sluice_spend_logs (team_id);
