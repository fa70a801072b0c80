DROP TABLE IF EXISTS manna_encryption_audit_invalid_rows;
DROP TABLE IF EXISTS manna_encryption_audit;
