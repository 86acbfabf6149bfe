-- SLO specs stored through the admin API, one row per SLO (`<service>-<slo>`),
-- each a Sloth prometheus/v1 spec holding that one SLO, as JSON text.
CREATE TABLE slos (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
