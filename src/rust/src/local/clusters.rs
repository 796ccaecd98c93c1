//! Clusters API routes: `clusters/get|list|start|restart|delete` under 2.0
//! and 2.1, with the service's `INVALID_STATE` and `INVALID_PARAMETER_VALUE`
//! errors. The state machine is in `cluster`.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::cluster::ClusterState;
use super::extract::{BodyLimit, Fields, Malformed};
use super::params::Params;
use super::reply::{self, api, invalid, Reply};
use super::state::{Compute, Shared};

type Input = Fields<Malformed>;

pub fn router() -> Router<Shared> {
    let mut r = Router::new();
    for v in ["2.0", "2.1"] {
        r = r
            .route(&format!("/api/{v}/clusters/get"), get(get_cluster))
            .route(&format!("/api/{v}/clusters/list"), get(list))
            .route(&format!("/api/{v}/clusters/start"), post(start))
            .route(&format!("/api/{v}/clusters/restart"), post(restart))
            .route(&format!("/api/{v}/clusters/delete"), post(delete));
    }
    r.layer(BodyLimit::SMALL.layer())
}

/// `cluster_id` from the request, checked against ours.
fn cluster_id(c: &Compute, p: &Params) -> Result<(), Response> {
    match p.nonempty("cluster_id") {
        None => Err(invalid("Missing required field: cluster_id")),
        Some(id) if id == c.cluster.spec.id => Ok(()),
        Some(id) => Err(invalid(format!("Cluster {id} does not exist"))),
    }
}

fn invalid_state(c: &Compute, s: ClusterState) -> Response {
    api(400, "INVALID_STATE", format!("Cluster {} is in unexpected state {}.", c.cluster.spec.id, s.title()))
}

async fn get_cluster(State(c): State<Compute>, Fields(p, ..): Input) -> Reply {
    cluster_id(&c, &p)?;
    reply::ok(c.cluster.details())
}

async fn list(State(c): State<Compute>) -> Reply {
    reply::ok(json!({"clusters": [c.cluster.details()]}))
}

async fn start(State(c): State<Compute>, Fields(p, ..): Input) -> Reply {
    cluster_id(&c, &p)?;
    let r = c.cluster.lock().start(c.cluster.spec.start_delay);
    r.map_err(|s| invalid_state(&c, s))?;
    reply::empty()
}

async fn restart(State(c): State<Compute>, Fields(p, ..): Input) -> Reply {
    cluster_id(&c, &p)?;
    c.restart().map_err(|s| invalid_state(&c, s))?;
    reply::empty()
}

/// `clusters/delete` terminates (it does not delete permanently).
async fn delete(State(c): State<Compute>, Fields(p, ..): Input) -> Reply {
    cluster_id(&c, &p)?;
    c.terminate();
    reply::empty()
}
