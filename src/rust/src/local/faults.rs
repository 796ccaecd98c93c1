//! Fault injection for `/api/` routes, set by `POST /_local/faults`: latency,
//! dropped connections, 429 and 503 answers (with `Retry-After` when
//! `retry_after_s` > 0). Draws come from a seeded RNG so runs are repeatable.

use std::sync::Mutex;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    pub status_429_rate: f64,
    pub status_503_rate: f64,
    pub retry_after_s: u64,
    pub drop_rate: f64,
    pub latency_ms: u64,
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            status_429_rate: 0.0,
            status_503_rate: 0.0,
            retry_after_s: 0,
            drop_rate: 0.0,
            latency_ms: 0,
            seed: 1,
        }
    }
}

impl FaultConfig {
    pub fn check(&self) -> Result<(), String> {
        for (name, r) in [
            ("status_429_rate", self.status_429_rate),
            ("status_503_rate", self.status_503_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{name} must be between 0 and 1, not {r}"));
            }
        }
        Ok(())
    }
}

/// What to do with one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    Drop,
    Status(u16),
}

/// Marks a response whose connection must be closed without answering.
#[derive(Clone, Copy)]
pub struct DropConnection;

pub struct Faults {
    inner: Mutex<(FaultConfig, StdRng)>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { inner: Mutex::new((FaultConfig::default(), StdRng::seed_from_u64(1))) }
    }
}

impl Faults {
    pub fn set(&self, cfg: FaultConfig) {
        let rng = StdRng::seed_from_u64(cfg.seed);
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = (cfg, rng);
    }

    pub fn config(&self) -> FaultConfig {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// Draw the fault for one request, and its latency.
    pub fn draw(&self) -> (Fault, u64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (cfg, rng) = &mut *g;
        let mut hit = |rate: f64| rate > 0.0 && rng.gen::<f64>() < rate;
        let fault = if hit(cfg.drop_rate) {
            Fault::Drop
        } else if hit(cfg.status_429_rate) {
            Fault::Status(429)
        } else if hit(cfg.status_503_rate) {
            Fault::Status(503)
        } else {
            Fault::None
        };
        (fault, cfg.latency_ms)
    }

    /// The answer for an injected fault.
    pub fn response(&self, fault: &Fault) -> Response {
        let retry_after = self.config().retry_after_s;
        let mut r = match fault {
            Fault::Status(429) => (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"error_code": "REQUEST_LIMIT_EXCEEDED",
                            "message": "Workspace local exceeded the concurrent limit of requests: RPC token bucket limit has been exceeded."})),
            )
                .into_response(),
            Fault::Status(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error_code": "TEMPORARILY_UNAVAILABLE",
                            "message": "The service is temporarily unavailable. Please try again later."})),
            )
                .into_response(),
            _ => {
                let mut r = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                r.extensions_mut().insert(DropConnection);
                return r;
            }
        };
        if retry_after > 0 {
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_draws_repeat_and_rates_hold() {
        let f = Faults::default();
        let cfg = FaultConfig { status_429_rate: 0.3, seed: 7, ..Default::default() };
        f.set(cfg.clone());
        let a: Vec<Fault> = (0..200).map(|_| f.draw().0).collect();
        f.set(cfg);
        let b: Vec<Fault> = (0..200).map(|_| f.draw().0).collect();
        assert_eq!(a, b);
        let n = a.iter().filter(|x| **x == Fault::Status(429)).count();
        assert!((30..90).contains(&n), "{n} of 200");
    }

    #[test]
    fn rates_are_checked() {
        let cfg = FaultConfig { drop_rate: 1.5, ..Default::default() };
        assert!(cfg.check().is_err());
        assert!(FaultConfig::default().check().is_ok());
    }
}
