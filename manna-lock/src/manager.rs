//! The r2d2 connection manager: connections with connect and command timeouts.

use std::time::Duration;

use redis::ConnectionLike;

/// Makes Redis connections for the pool, each with bounded connect, read
/// and write times, so a dead server produces an error instead of a hang.
#[derive(Debug, Clone)]
pub struct RedisManager {
    client: redis::Client,
    connect_timeout: Duration,
    command_timeout: Duration,
}

impl RedisManager {
    /// A manager for `client` with the given timeouts.
    ///
    /// ```
    /// use std::time::Duration;
    /// let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    /// let manager = manna_lock::RedisManager::new(client, Duration::from_secs(1), Duration::from_secs(1));
    /// # let _ = manager;
    /// ```
    pub fn new(
        client: redis::Client,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Self {
        Self {
            client,
            connect_timeout,
            command_timeout,
        }
    }
}

impl r2d2::ManageConnection for RedisManager {
    type Connection = redis::Connection;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<Self::Connection, Self::Error> {
        let conn = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        conn.set_read_timeout(Some(self.command_timeout))?;
        conn.set_write_timeout(Some(self.command_timeout))?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        redis::cmd("PING").query::<String>(conn).map(|_| ())
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        !conn.is_open()
    }
}
