-- The example schema used by the quickstart and the tests. Portable across
-- PostgreSQL, MySQL/MariaDB and SQLite.
CREATE TABLE plaid_items (
    id BIGINT PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    -- Encrypted columns hold text envelopes (manna:v1:...) or legacy Fernet tokens.
    access_token TEXT NOT NULL,
    notes TEXT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
