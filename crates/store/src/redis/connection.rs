//! The connection to Redis: one server through a reconnecting connection manager, or a Redis
//! Cluster through a client that sends each command to the node serving its key's slot.
//!
//! On a cluster every transaction and pipeline must keep to one slot, so the backend sends
//! commands that may touch several slots through [`Con::spread`] and [`Con::each`], which keep
//! to one pipeline on a single server.

use std::time::Duration;

use futures_util::future::{join_all, try_join_all};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value};

use crate::{Result, StoreError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub(super) enum Con {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A node to `SCAN`: the one server, or one cluster primary by address.
pub(super) type Node = Option<(String, u16)>;

impl Con {
    /// Connects to the Redis at `url`; when it is a cluster node, to the whole cluster, which
    /// that node describes.
    pub(super) async fn open(url: &str, shown: &str) -> Result<Con> {
        let client = redis::Client::open(url).map_err(|e| {
            StoreError::Unavailable(format!(
                "`{shown}` is not a Redis URL ({e}); write it as redis://HOST:PORT/DB, or \
                 redis://:PASSWORD@HOST:PORT/DB"
            ))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2);
        let unreachable =
            |e| StoreError::Unavailable(format!("cannot reach Redis at {shown}: {e}"));
        let mut single =
            ConnectionManager::new_with_config(client, config).await.map_err(unreachable)?;
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut single)
            .await
            .map_err(|e| StoreError::Unavailable(format!("Redis at {shown}: {e}")))?;
        if !info.lines().any(|line| line.trim() == "cluster_enabled:1") {
            return Ok(Con::Single(single));
        }
        let client = ClusterClient::builder([url])
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            // Few and short, as the single server's connection manager: the log writer spills and
            // the pipeline retries on their own, and a node that is down must not hold up every
            // group commit for seconds (the default waits 1.28 s or more before each retry).
            .retries(2)
            .min_retry_wait(20)
            .max_retry_wait(200)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("Redis Cluster at {shown}: {e}")))?;
        let cluster = client.get_async_connection().await.map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot reach the Redis Cluster of {shown}: {e} (a cluster serves database \
                 0 only, and every slot must be served)"
            ))
        })?;
        Ok(Con::Cluster(cluster))
    }

    /// Runs commands whose keys may lie in different slots: one pipeline on a single server,
    /// one request each, all sent at once, on a cluster.
    pub(super) async fn spread<T: FromRedisValue>(&self, cmds: Vec<Cmd>) -> RedisResult<Vec<T>> {
        match self {
            Con::Single(con) => {
                if cmds.is_empty() {
                    return Ok(Vec::new());
                }
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                pipe.query_async(&mut con.clone()).await
            }
            Con::Cluster(con) => {
                try_join_all(cmds.iter().map(|cmd| {
                    let mut con = con.clone();
                    async move { cmd.query_async(&mut con).await }
                }))
                .await
            }
        }
    }

    /// Runs pipelines (each within one slot) at once; each result says whether it ran.
    pub(super) async fn each(&self, pipes: &[Pipeline]) -> Vec<RedisResult<()>> {
        join_all(pipes.iter().map(|pipe| {
            let mut con = self.clone();
            async move { pipe.query_async::<()>(&mut con).await }
        }))
        .await
    }

    /// The nodes whose keys together are every key: the server, or each cluster primary.
    pub(super) async fn nodes(&self) -> RedisResult<Vec<Node>> {
        let Con::Cluster(con) = self else { return Ok(vec![None]) };
        let slots: Vec<Value> =
            redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut con.clone()).await?;
        let mut nodes = Vec::new();
        for range in slots {
            // [first slot, last slot, [host, port, id, …] of the primary, replicas…]
            let primary = match range {
                Value::Array(mut parts) if parts.len() >= 3 => parts.swap_remove(2),
                other => return Err(unexpected("CLUSTER SLOTS", &other)),
            };
            let (host, port): (String, u16) = match primary {
                Value::Array(parts) if parts.len() >= 2 => (
                    redis::from_redis_value(parts[0].clone())?,
                    redis::from_redis_value(parts[1].clone())?,
                ),
                other => return Err(unexpected("CLUSTER SLOTS", &other)),
            };
            if !nodes.contains(&Some((host.clone(), port))) {
                nodes.push(Some((host, port)));
            }
        }
        Ok(nodes)
    }

    /// One `SCAN` step on `node`.
    pub(super) async fn scan(
        &self,
        node: &Node,
        cursor: u64,
        pattern: &str,
    ) -> RedisResult<(u64, Vec<String>)> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000);
        match (self, node) {
            (Con::Cluster(con), Some((host, port))) => {
                let to = SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port };
                let answer = con.clone().route_command(scan, RoutingInfo::SingleNode(to)).await?;
                Ok(redis::from_redis_value(answer)?)
            }
            _ => scan.query_async(&mut self.clone()).await,
        }
    }
}

fn unexpected(what: &str, value: &Value) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected answer",
        format!("{what} answered {value:?}"),
    ))
}

impl ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Con::Single(con) => con.req_packed_command(cmd),
            Con::Cluster(con) => con.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Con::Single(con) => con.req_packed_commands(pipeline, offset, count),
            Con::Cluster(con) => con.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Con::Single(con) => con.get_db(),
            Con::Cluster(con) => con.get_db(),
        }
    }
}
