//! The connections a run works on, and what differs between them.

use diesel::connection::Connection;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};
use diesel::{QueryResult, QueryableByName, RunQueryDsl};

use super::sql::{Dialect, Statements};

/// A connection the re-encryption engine can run on: `PgConnection`,
/// `MysqlConnection` or `SqliteConnection`, with the matching manna-diesel
/// feature (`postgres`, `mysql`, `sqlite`). Sealed; its methods are internal.
///
/// For an r2d2 pooled connection, pass the connection inside it
/// (`&mut *pooled`).
///
/// ```
/// fn assert_supported<C: manna_diesel::migrate::MigrationConnection>() {}
/// assert_supported::<diesel::SqliteConnection>();
/// ```
pub trait MigrationConnection: Connection + sealed::Sealed {
    #[doc(hidden)]
    const DIALECT: Dialect;

    /// One page of rows (`sql` takes the last id seen as its parameter),
    /// read as text or as bytes.
    #[doc(hidden)]
    fn fetch_page(&mut self, sql: &str, after: i64, binary: bool) -> QueryResult<Vec<PageRow>>;

    /// `SELECT MIN(id) AS lo, MAX(id) AS hi ...`.
    #[doc(hidden)]
    fn id_range(&mut self, sql: &str) -> QueryResult<(Option<i64>, Option<i64>)>;

    /// Runs a statement with positional binds; returns the affected rows.
    #[doc(hidden)]
    fn execute_binds(&mut self, sql: &str, binds: &[Bind<'_>]) -> QueryResult<usize>;

    /// Compare-and-swap of a batch: each row gets its new value only if it
    /// still holds the old one. Returns how many rows were written.
    #[doc(hidden)]
    fn write_batch(&mut self, statements: &Statements, rows: &[Rewrite]) -> QueryResult<usize>;
}

mod sealed {
    pub trait Sealed {}
}

/// A stored value: from a text column or a binary one.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Text(String),
    Binary(Vec<u8>),
}

impl Stored {
    /// The value's bytes (a text value's UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Stored::Text(s) => s.as_bytes(),
            Stored::Binary(b) => b,
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Stored::Text(s) => s,
            Stored::Binary(_) => "",
        }
    }
}

/// One row of a page.
#[doc(hidden)]
#[derive(Debug)]
pub struct PageRow {
    pub id: i64,
    pub value: Option<Stored>,
}

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
}

#[derive(QueryableByName)]
struct BinaryRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Binary>)]
    value: Option<Vec<u8>>,
}

/// A value to replace, and what it must still be (both of the column's kind).
#[doc(hidden)]
#[derive(Debug)]
pub struct Rewrite {
    pub id: i64,
    pub old: Stored,
    pub new: Stored,
}

/// A bind parameter of an audit statement.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Bind<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    BigInt(i64),
    OptBigInt(Option<i64>),
}

#[derive(QueryableByName)]
struct IdRange {
    #[diesel(sql_type = Nullable<BigInt>)]
    lo: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    hi: Option<i64>,
}

macro_rules! common {
    ($backend:ty) => {
        fn fetch_page(&mut self, sql: &str, after: i64, binary: bool) -> QueryResult<Vec<PageRow>> {
            let query = diesel::sql_query(sql).bind::<BigInt, _>(after);
            Ok(if binary {
                query
                    .load::<BinaryRow>(self)?
                    .into_iter()
                    .map(|r| PageRow {
                        id: r.id,
                        value: r.value.map(Stored::Binary),
                    })
                    .collect()
            } else {
                query
                    .load::<TextRow>(self)?
                    .into_iter()
                    .map(|r| PageRow {
                        id: r.id,
                        value: r.value.map(Stored::Text),
                    })
                    .collect()
            })
        }

        fn id_range(&mut self, sql: &str) -> QueryResult<(Option<i64>, Option<i64>)> {
            diesel::sql_query(sql)
                .get_result::<IdRange>(self)
                .map(|r| (r.lo, r.hi))
        }

        fn execute_binds(&mut self, sql: &str, binds: &[Bind<'_>]) -> QueryResult<usize> {
            let mut query = diesel::sql_query(sql).into_boxed::<$backend>();
            for bind in binds {
                query = match *bind {
                    Bind::Text(v) => query.bind::<Text, _>(v),
                    Bind::OptText(v) => query.bind::<Nullable<Text>, _>(v),
                    Bind::BigInt(v) => query.bind::<BigInt, _>(v),
                    Bind::OptBigInt(v) => query.bind::<Nullable<BigInt>, _>(v),
                };
            }
            query.execute(self)
        }
    };
}

#[cfg(feature = "postgres")]
impl sealed::Sealed for diesel::PgConnection {}

#[cfg(feature = "postgres")]
impl MigrationConnection for diesel::PgConnection {
    const DIALECT: Dialect = Dialect::Postgres;

    common!(diesel::pg::Pg);

    fn write_batch(&mut self, statements: &Statements, rows: &[Rewrite]) -> QueryResult<usize> {
        use diesel::sql_types::Array;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let query = diesel::sql_query(statements.cas_unnest()).bind::<Array<BigInt>, _>(ids);
        if statements.binary {
            let old: Vec<&[u8]> = rows.iter().map(|r| r.old.as_bytes()).collect();
            let new: Vec<&[u8]> = rows.iter().map(|r| r.new.as_bytes()).collect();
            query
                .bind::<Array<Binary>, _>(old)
                .bind::<Array<Binary>, _>(new)
                .execute(self)
        } else {
            let old: Vec<&str> = rows.iter().map(|r| r.old.as_str()).collect();
            let new: Vec<&str> = rows.iter().map(|r| r.new.as_str()).collect();
            query
                .bind::<Array<Text>, _>(old)
                .bind::<Array<Text>, _>(new)
                .execute(self)
        }
    }
}

#[cfg(feature = "mysql")]
impl sealed::Sealed for diesel::MysqlConnection {}

#[cfg(feature = "mysql")]
impl MigrationConnection for diesel::MysqlConnection {
    const DIALECT: Dialect = Dialect::Mysql;

    common!(diesel::mysql::Mysql);

    fn write_batch(&mut self, statements: &Statements, rows: &[Rewrite]) -> QueryResult<usize> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut query = diesel::sql_query(statements.cas_derived_table(rows.len()))
            .into_boxed::<diesel::mysql::Mysql>();
        for row in rows {
            query = query.bind::<BigInt, _>(row.id);
            query = if statements.binary {
                query
                    .bind::<Binary, _>(row.old.as_bytes())
                    .bind::<Binary, _>(row.new.as_bytes())
            } else {
                query
                    .bind::<Text, _>(row.old.as_str())
                    .bind::<Text, _>(row.new.as_str())
            };
        }
        query.execute(self)
    }
}

#[cfg(feature = "sqlite")]
impl sealed::Sealed for diesel::SqliteConnection {}

#[cfg(feature = "sqlite")]
impl MigrationConnection for diesel::SqliteConnection {
    const DIALECT: Dialect = Dialect::Sqlite;

    common!(diesel::sqlite::Sqlite);

    fn write_batch(&mut self, statements: &Statements, rows: &[Rewrite]) -> QueryResult<usize> {
        let sql = statements.cas_one();
        let mut written = 0;
        for row in rows {
            let query = diesel::sql_query(&sql).into_boxed::<diesel::sqlite::Sqlite>();
            let query = if statements.binary {
                query
                    .bind::<Binary, _>(row.new.as_bytes())
                    .bind::<BigInt, _>(row.id)
                    .bind::<Binary, _>(row.old.as_bytes())
            } else {
                query
                    .bind::<Text, _>(row.new.as_str())
                    .bind::<BigInt, _>(row.id)
                    .bind::<Text, _>(row.old.as_str())
            };
            written += query.execute(self)?;
        }
        Ok(written)
    }
}
