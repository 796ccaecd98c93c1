//! Who may call: the cluster's bearer token, and the OAuth M2M client and the
//! access tokens issued to it (they expire after `token_ttl_s`).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct Access {
    /// The bearer token clients must send.
    pub token: String,
    /// The token the cluster's own processes (contexts, job tasks) call
    /// with: minted here, never the client's, gone with the cluster.
    pub cluster_token: String,
    /// OAuth M2M client credentials, when enabled.
    pub client: Option<(String, String)>,
    pub token_ttl: Duration,
    /// The server's base URL (discovery documents name it), set once it listens.
    pub url: OnceLock<String>,
    issued: Mutex<HashMap<String, Instant>>,
}

impl Access {
    pub fn new(token: String, client: Option<(String, String)>, token_ttl: Duration) -> Access {
        Access { token, cluster_token: format!("dapi{}", super::util::random_hex(16)), client, token_ttl, url: OnceLock::new(), issued: Mutex::default() }
    }

    pub fn url(&self) -> String {
        self.url.get().cloned().unwrap_or_default()
    }

    /// Whether `bearer` may call: the cluster's token, or an OAuth token
    /// issued here that has not expired.
    pub fn allows(&self, bearer: &str) -> bool {
        constant_time_eq(bearer.as_bytes(), self.token.as_bytes())
            || constant_time_eq(bearer.as_bytes(), self.cluster_token.as_bytes())
            || self.issued_valid(bearer)
    }

    fn issued_valid(&self, token: &str) -> bool {
        let mut map = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, exp| *exp > now);
        map.contains_key(token)
    }

    /// A new OAuth access token.
    pub fn issue(&self) -> String {
        let token = format!("dbrxr-oauth-{}", super::util::random_hex(24));
        let mut map = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(token.clone(), Instant::now() + self.token_ttl);
        token
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
