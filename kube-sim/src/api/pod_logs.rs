//! `GET pods/{name}/log`: tail, since, timestamps, limitBytes, previous, container and
//! follow, with the real server's errors for ambiguous or not-yet-started containers.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{ApiState, Call, Reply};
use crate::kubelet::{LogQuery, truncate_bytes};
use crate::status::{ApiError, ApiResult};
use crate::store::{Kind, ObjKey};

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn waiting_reason(pod: &Value, container: &str) -> Option<String> {
    for list in ["initContainerStatuses", "containerStatuses"] {
        for c in pod
            .pointer(&format!("/status/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if c.get("name").and_then(Value::as_str) == Some(container) {
                return c
                    .pointer("/state/waiting/reason")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
        }
    }
    None
}

pub fn get(state: &ApiState, namespace: &str, name: &str, call: &Call) -> ApiResult<Reply> {
    let obj = state
        .store
        .get(Kind::Pod, &ObjKey::new(namespace, name))
        .ok_or_else(|| ApiError::not_found("pods", "", name))?;
    let pod = obj.value();
    let containers = names(&pod, "containers");
    let init = names(&pod, "initContainers");
    let container = match call.query.get("container") {
        Some(c) => {
            if !containers.iter().chain(init.iter()).any(|n| n == c) {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            c.to_string()
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            return Err(ApiError::bad_request(msg));
        }
    };
    let previous = call.query.flag("previous");
    let since = match (call.query.int("sinceSeconds")?, call.query.get("sinceTime")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "at most one of sinceTime or sinceSeconds may be specified",
            ));
        }
        (Some(s), None) if s > 0 => k8s_openapi::jiff::Timestamp::now()
            .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(s))
            .ok(),
        (Some(s), None) => {
            return Err(ApiError::bad_request(format!(
                "sinceSeconds: Invalid value: {s}: must be greater than 0"
            )));
        }
        (None, Some(t)) => Some(t.parse().map_err(|_| {
            ApiError::bad_request(format!("sinceTime: invalid RFC3339 time {t:?}"))
        })?),
        (None, None) => None,
    };
    let tail_lines = match call.query.int("tailLines")? {
        Some(n) if n < 0 => {
            return Err(ApiError::bad_request(format!(
                "tailLines: Invalid value: {n}: must be greater than or equal to 0"
            )));
        }
        n => n.map(|n| n as usize),
    };
    let limit_bytes = match call.query.int("limitBytes")? {
        Some(n) if n < 1 => {
            return Err(ApiError::bad_request(format!(
                "limitBytes: Invalid value: {n}: must be greater than 0"
            )));
        }
        n => n.map(|n| n as usize),
    };
    let query = LogQuery {
        tail_lines,
        since,
        timestamps: call.query.flag("timestamps"),
        limit_bytes,
    };
    let Some(buffer) = state.kubelet.logs().get(&obj.uid, &container, previous) else {
        if previous {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            )));
        }
        let reason = waiting_reason(&pod, &container).unwrap_or_else(|| "ContainerCreating".into());
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    };
    let (mut text, cursor) = buffer.snapshot(&query);
    if !call.query.flag("follow") || buffer.is_closed() {
        if let Some(limit) = limit_bytes {
            truncate_bytes(&mut text, limit);
        }
        return Ok(Reply::bytes(StatusCode::OK, Bytes::from(text)).plain());
    }
    // follow: stream what exists, then every new line until the run ends.
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let shutdown = state.shutdown.clone();
    let timestamps = query.timestamps;
    tokio::spawn(async move {
        let mut budget = limit_bytes.unwrap_or(usize::MAX);
        let first = spend(&mut budget, text);
        if !first.is_empty() && tx.send(Ok(Bytes::from(first))).await.is_err() {
            return;
        }
        let mut changes = buffer.subscribe();
        let mut cursor = cursor;
        while budget > 0 {
            let (more, next, closed) = buffer.since_cursor(cursor, timestamps);
            cursor = next;
            if !more.is_empty()
                && tx
                    .send(Ok(Bytes::from(spend(&mut budget, more))))
                    .await
                    .is_err()
            {
                return;
            }
            if closed {
                return;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                r = changes.changed() => if r.is_err() { return },
                // Safety net: a pod removed with its buffer never signals again.
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    });
    Ok(Reply::stream(
        Body::from_stream(ReceiverStream::new(rx)),
        "text/plain; charset=utf-8",
    ))
}

/// Cuts `chunk` to what is left of the `limitBytes` budget and charges it.
fn spend(budget: &mut usize, mut chunk: String) -> String {
    if chunk.len() > *budget {
        truncate_bytes(&mut chunk, *budget);
    }
    *budget -= chunk.len();
    chunk
}
