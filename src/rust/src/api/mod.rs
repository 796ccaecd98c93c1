//! Typed wrappers of the Databricks REST endpoints the client uses
//! (reference §1–§3). One function per endpoint, no retries (the transport
//! owns them) and no waiting (the session owns it).

pub mod access;
pub mod clusters;
pub mod commands;
pub mod contexts;
pub mod dbfs;
pub mod files;
pub mod jobs;
pub mod serving;
