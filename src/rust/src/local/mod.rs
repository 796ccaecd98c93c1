//! The local cluster: an embedded Databricks-compatible server.
