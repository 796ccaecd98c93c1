//! The transport: pooled HTTP client, auth header, retries, error body parsing.
