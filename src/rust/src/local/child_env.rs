//! The environment of every process the local cluster starts (context
//! workers, job tasks, the MLflow server): built from an allow-list, never
//! inherited whole, so a client's credentials and unrelated settings stay
//! with the client, as a real cluster's processes never see them.

use std::ffi::OsStr;

/// Inherited by name: what the interpreter, R, Java/Spark and the network
/// stack need on this machine.
const NAMES: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TMP", "TEMP",
    // rpy2 finds libR through these when R put them in the client's environment.
    "LD_LIBRARY_PATH",
    // A machine behind a proxy or with its own CA still reaches package indexes.
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE",
    "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
];

/// Inherited by prefix: locale, R, Python, Java, Spark and dbrxr's own
/// settings (`DBRXR_PYTHON`, `DBRXR_SPARK_MEMORY`, ...), but never a name
/// that holds a credential (`DBRXR_LOCAL_TOKEN`, see [`is_secret_name`]).
const PREFIXES: &[&str] = &["LC_", "R_", "PYTHON", "JAVA_", "SPARK_", "PYSPARK_", "HADOOP_", "DBRXR_"];

/// Whether the client's variable `name` reaches the cluster's processes.
pub(crate) fn inherited(name: &str) -> bool {
    (NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))) && !is_secret_name(name)
}

/// A command for `program` whose environment is the allow-listed part of the
/// server's, then `cluster` on top: the one place every child's environment
/// is built. The caller then adds what is specific to that process (e.g. a
/// context's id) with `.env(...)`.
///
/// `cluster` is what the cluster itself gives its processes, as a Databricks
/// runtime gives notebooks and job tasks their credentials and endpoints:
/// today `Local::worker_env` (MLflow tracking and registry URIs and the
/// cluster's token, see `mlflow::context_env`). Variables the cluster should
/// add to every context and task (its own `DATABRICKS_HOST`, a token it
/// mints, `MLFLOW_TRACKING_URI=databricks`) belong in that list, not here.
pub(crate) fn command(program: impl AsRef<OsStr>, cluster: &[(String, String)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear();
    for (name, value) in std::env::vars_os() {
        if name.to_str().is_some_and(inherited) {
            cmd.env(name, value);
        }
    }
    for (k, v) in cluster {
        cmd.env(k, v);
    }
    cmd
}

/// Whether an environment variable holds a credential of the client: any
/// token, secret, password or key of Databricks, dbrxr, or the cloud logins
/// unified auth reads (Azure, Google, AWS).
pub(crate) fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    const SCOPES: &[&str] = &["DATABRICKS_", "DBRXR_", "ARM_", "AZURE_", "GOOGLE_", "AWS_"];
    const SECRETS: &[&str] =
        &["TOKEN", "TOKENS", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS", "KEY", "PAT"];
    SCOPES.iter().any(|s| upper.starts_with(s)) && upper.split('_').skip(1).any(|part| SECRETS.contains(&part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_variables_without_credentials_are_inherited() {
        for n in ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "R_HOME", "R_LIBS", "PYTHONPATH", "JAVA_HOME",
                  "SPARK_HOME", "PYSPARK_PYTHON", "DBRXR_PYTHON", "DBRXR_SPARK_MEMORY", "TMPDIR", "https_proxy"] {
            assert!(inherited(n), "{n}");
        }
        for n in ["DATABRICKS_TOKEN", "DATABRICKS_HOST", "DATABRICKS_CLIENT_SECRET", "AWS_SECRET_ACCESS_KEY",
                  "DBRXR_LOCAL_TOKEN", "DBRXR_TEST_CANARY_SECRET", "FOO_UNLISTED", "MLFLOW_TRACKING_TOKEN",
                  "MLFLOW_TRACKING_URI", "GITHUB_PAT", "OPENAI_API_KEY", "SSH_AUTH_SOCK", "DATABRICKS_CONFIG_PROFILE"] {
            assert!(!inherited(n), "{n}");
        }
    }
}
