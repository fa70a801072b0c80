-- Fernet -> AES-256-GCM upgrade: the audit tables of the re-encryption runs.
-- Portable across PostgreSQL, MySQL/MariaDB and SQLite. The same statements
-- are in manna-diesel (`AUDIT_TABLES_DDL`); `manna migrate` runs them when the
-- tables are missing, and a test keeps the two copies identical.
--
-- No column is widened: a v1 text envelope is never longer than the Fernet
-- token it replaces (Fernet adds 57 bytes plus 1-16 bytes of padding before
-- base64; v1 adds 33 bytes and a 9-character prefix), which a test checks for
-- every plaintext length up to 4 KiB. The example schema's encrypted columns
-- are TEXT on every backend.
--
-- The rows themselves are converted by the re-encryption engine, not by SQL:
-- run `manna migrate`, or add `manna_diesel::migrate::ReencryptMigration` to
-- your migration source (see the manna-diesel docs).

-- manna:audit-ddl:begin
CREATE TABLE IF NOT EXISTS manna_encryption_audit (
    run_id VARCHAR(32) NOT NULL PRIMARY KEY,
    operation VARCHAR(16) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    column_name VARCHAR(255) NOT NULL,
    context VARCHAR(255) NULL,
    rows_converted BIGINT NOT NULL DEFAULT 0,
    rows_skipped BIGINT NOT NULL DEFAULT 0,
    rows_changed_concurrently BIGINT NOT NULL DEFAULT 0,
    rows_invalid BIGINT NOT NULL DEFAULT 0,
    last_id BIGINT NULL,
    from_format VARCHAR(255) NULL,
    to_format VARCHAR(32) NOT NULL,
    key_id VARCHAR(8) NOT NULL,
    started_at TIMESTAMP NULL DEFAULT NULL,
    finished_at TIMESTAMP NULL DEFAULT NULL,
    status VARCHAR(16) NOT NULL,
    error TEXT NULL
);
CREATE TABLE IF NOT EXISTS manna_encryption_audit_invalid_rows (
    run_id VARCHAR(32) NOT NULL,
    row_id BIGINT NOT NULL,
    failure VARCHAR(255) NOT NULL,
    PRIMARY KEY (run_id, row_id)
);
-- manna:audit-ddl:end
