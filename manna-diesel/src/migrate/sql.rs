//! The SQL of a run, per dialect. Identifiers are validated, then quoted;
//! values are always bind parameters.

use super::MigrationError;

/// The SQL dialect of a connection.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: `"quoted"` identifiers, `$n` parameters.
    Postgres,
    /// MySQL and MariaDB: `` `quoted` `` identifiers, `?` parameters.
    Mysql,
    /// SQLite: `"quoted"` identifiers, `?` parameters.
    Sqlite,
}

impl Dialect {
    /// The `n`th (1-based) bind parameter.
    fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::Mysql | Dialect::Sqlite => "?".to_owned(),
        }
    }

    /// `a, b, c` parameters numbered from 1.
    fn params(self, count: usize) -> Vec<String> {
        (1..=count).map(|n| self.param(n)).collect()
    }

    fn quote_part(self, part: &str) -> String {
        match self {
            Dialect::Mysql => format!("`{part}`"),
            Dialect::Postgres | Dialect::Sqlite => format!("\"{part}\""),
        }
    }
}

/// Checks that `name` is a plain identifier (optionally `schema.name` for
/// tables) and quotes it for `dialect`.
fn quote(
    dialect: Dialect,
    what: &'static str,
    name: &str,
    qualified: bool,
) -> Result<String, MigrationError> {
    let invalid = || MigrationError::InvalidIdentifier {
        what,
        name: name.to_owned(),
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > if qualified { 2 } else { 1 } {
        return Err(invalid());
    }
    let plain = |p: &str| {
        let mut chars = p.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && p.len() <= 64
    };
    if !parts.iter().all(|p| plain(p)) {
        return Err(invalid());
    }
    Ok(parts
        .iter()
        .map(|p| dialect.quote_part(p))
        .collect::<Vec<_>>()
        .join("."))
}

/// The statements of one run over one column.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Statements {
    pub(crate) dialect: Dialect,
    /// The column holds bytes (`BYTEA`/`BLOB`), not text.
    pub(crate) binary: bool,
    table: String,
    id: String,
    column: String,
    /// One page of non-NULL values after an id (parameter 1).
    pub(crate) page: String,
    /// The first page: from an id (parameter 1, `i64::MIN`) on, inclusive.
    pub(crate) first_page: String,
    /// One page of all values (NULLs too) after an id, for the census.
    pub(crate) census_page: String,
    /// The census's first page.
    pub(crate) census_first_page: String,
    /// The smallest and largest id (from the index; no table scan).
    pub(crate) id_range: String,
}

impl Statements {
    /// Validates the names and builds the statements.
    pub fn new(
        dialect: Dialect,
        table: &str,
        id: &str,
        column: &str,
        batch_size: usize,
    ) -> Result<Self, MigrationError> {
        let table = quote(dialect, "table", table, true)?;
        let id = quote(dialect, "id column", id, false)?;
        let column = quote(dialect, "column", column, false)?;
        // PostgreSQL does not widen INTEGER to BIGINT on read; the others do.
        let id_expr = match dialect {
            Dialect::Postgres => format!("CAST({id} AS BIGINT)"),
            Dialect::Mysql | Dialect::Sqlite => id.clone(),
        };
        let p1 = dialect.param(1);
        let page = |op: &str, filter: &str| {
            format!(
                "SELECT {id_expr} AS id, {column} AS value FROM {table} \
                 WHERE {id} {op} {p1}{filter} ORDER BY {id} LIMIT {batch_size}"
            )
        };
        let not_null = format!(" AND {column} IS NOT NULL");
        Ok(Self {
            page: page(">", &not_null),
            first_page: page(">=", &not_null),
            census_page: page(">", ""),
            census_first_page: page(">=", ""),
            id_range: format!("SELECT MIN({id_expr}) AS lo, MAX({id_expr}) AS hi FROM {table}"),
            dialect,
            binary: false,
            table,
            id,
            column,
        })
    }

    /// For a binary column (`BYTEA`/`BLOB`).
    pub fn binary(mut self, binary: bool) -> Self {
        self.binary = binary;
        self
    }

    /// The page query (benchmarks run it to measure the database floor).
    pub fn page(&self) -> &str {
        &self.page
    }

    /// PostgreSQL: the whole batch as three arrays, one statement.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn cas_unnest(&self) -> String {
        let Self {
            table, id, column, ..
        } = self;
        let kind = if self.binary { "bytea" } else { "text" };
        format!(
            "UPDATE {table} AS manna_t SET {column} = manna_v.new_value \
             FROM unnest($1::bigint[], $2::{kind}[], $3::{kind}[]) AS manna_v(id, old_value, new_value) \
             WHERE manna_t.{id} = manna_v.id AND manna_t.{column} = manna_v.old_value"
        )
    }

    /// MySQL/MariaDB: the whole batch as a derived table, one statement.
    /// The comparison is binary, so a case-insensitive collation cannot
    /// match a different value.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(crate) fn cas_derived_table(&self, rows: usize) -> String {
        let Self {
            table, id, column, ..
        } = self;
        let mut values = String::with_capacity(rows * 24 + 64);
        values.push_str("SELECT ? AS id, ? AS old_value, ? AS new_value");
        for _ in 1..rows {
            values.push_str(" UNION ALL SELECT ?, ?, ?");
        }
        format!(
            "UPDATE {table} AS manna_t JOIN ({values}) AS manna_v ON manna_t.{id} = manna_v.id \
             SET manna_t.{column} = manna_v.new_value \
             WHERE CAST(manna_t.{column} AS BINARY) = CAST(manna_v.old_value AS BINARY)"
        )
    }

    /// SQLite: one row per statement (in one transaction; SQLite is in-process).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn cas_one(&self) -> String {
        let Self {
            table, id, column, ..
        } = self;
        format!("UPDATE {table} SET {column} = ? WHERE {id} = ? AND {column} = ?")
    }

    pub(crate) fn audit_start(&self) -> String {
        let p = self.dialect.params(6);
        format!(
            "INSERT INTO manna_encryption_audit \
             (run_id, operation, table_name, column_name, context, key_id, to_format, started_at, status) \
             VALUES ({}, {}, {}, {}, {}, {}, 'v1', CURRENT_TIMESTAMP, 'running')",
            p[0], p[1], p[2], p[3], p[4], p[5]
        )
    }

    /// Counts, last id and from-format (parameters 1..=6), then the run id (7).
    pub(crate) fn audit_progress(&self) -> String {
        let p = self.dialect.params(7);
        format!(
            "UPDATE manna_encryption_audit SET rows_converted = {}, rows_skipped = {}, \
             rows_changed_concurrently = {}, rows_invalid = {}, last_id = {}, from_format = {} \
             WHERE run_id = {}",
            p[0], p[1], p[2], p[3], p[4], p[5], p[6]
        )
    }

    /// Status (1), error (2), run id (3).
    pub(crate) fn audit_finish(&self) -> String {
        let p = self.dialect.params(3);
        format!(
            "UPDATE manna_encryption_audit SET status = {}, error = {}, \
             finished_at = CURRENT_TIMESTAMP WHERE run_id = {}",
            p[0], p[1], p[2]
        )
    }

    pub(crate) fn audit_invalid_row(&self) -> String {
        let p = self.dialect.params(3);
        format!(
            "INSERT INTO manna_encryption_audit_invalid_rows (run_id, row_id, failure) \
             VALUES ({}, {}, {})",
            p[0], p[1], p[2]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_validated_and_quoted() {
        let s = Statements::new(
            Dialect::Postgres,
            "app.plaid_items",
            "id",
            "access_token",
            10,
        )
        .expect("valid");
        assert_eq!(
            s.page,
            "SELECT CAST(\"id\" AS BIGINT) AS id, \"access_token\" AS value FROM \"app\".\"plaid_items\" \
             WHERE \"id\" > $1 AND \"access_token\" IS NOT NULL ORDER BY \"id\" LIMIT 10"
        );
        let m = Statements::new(Dialect::Mysql, "t", "id", "c", 5).expect("valid");
        assert!(m
            .cas_derived_table(2)
            .contains("UNION ALL SELECT ?, ?, ?) AS manna_v"));
        for (table, column) in [
            ("t; DROP TABLE x", "c"),
            ("t", "c\""),
            ("a.b.c", "c"),
            ("", "c"),
            ("t", "1c"),
            ("t", "a.b"),
        ] {
            let err = Statements::new(Dialect::Sqlite, table, "id", column, 1).unwrap_err();
            assert!(
                matches!(err, MigrationError::InvalidIdentifier { .. }),
                "{table} {column}"
            );
        }
    }
}
