//! A connection's session: cluster ensure-running, its execution context, commands.

use crate::auth::Credentials;
use crate::config::Config;
use crate::error::Result;

/// One connection to a workspace (or local cluster). Creating it does no I/O.
#[derive(Debug)]
pub struct Session {
    pub config: Config,
    pub credentials: Credentials,
}

impl Session {
    pub fn new(config: Config) -> Result<Session> {
        let credentials = Credentials::new(&config.host, config.auth.clone());
        Ok(Session { config, credentials })
    }
}
