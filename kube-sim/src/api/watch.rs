//! list and watch: selectors, pagination with consistent snapshots, resourceVersion
//! semantics, bookmarks, timeouts and 410 Expired.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{ApiState, Call, Reply, table};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::{Event, EventType, Kind, ObjKey, Objects, ReadAt, StoredObj, WatchStart};

/// The filters of a list or watch request.
pub struct Filter {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn from_call(kind: Kind, namespace: Option<&str>, call: &Call) -> ApiResult<Self> {
        let labels = LabelSelector::parse(call.query.get("labelSelector").unwrap_or_default())?;
        let fields = FieldSelector::parse(
            call.query.get("fieldSelector").unwrap_or_default(),
            kind.kind(),
            kind == Kind::Pod,
        )?;
        Ok(Filter {
            namespace: namespace.map(str::to_string),
            labels,
            fields,
        })
    }

    fn matches(&self, obj: &StoredObj) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| &*obj.key.namespace == ns)
            && self.labels.matches(&obj.labels)
            && self.fields.matches(&obj.fields)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
}

fn encode_continue(rv: u64, last: &ObjKey) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: format!("{}\u{0}", last.encode()),
    };
    base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_continue(s: &str) -> ApiResult<(u64, ObjKey)> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {s:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(s)
        .map_err(|_| bad())?;
    let token: ContinueToken = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if token.v != "meta.k8s.io/v1" {
        return Err(bad());
    }
    let key = ObjKey::decode(token.start.trim_end_matches('\u{0}')).ok_or_else(bad)?;
    Ok((token.rv, key))
}

fn parse_rv(s: &str) -> ApiResult<u64> {
    s.parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))
}

/// Which state a list reads, from `resourceVersion` + `resourceVersionMatch` + `continue`.
fn read_at(call: &Call) -> ApiResult<(ReadAt, Option<ObjKey>)> {
    let rv = call.query.get("resourceVersion");
    let rv_match = call.query.get("resourceVersionMatch");
    if let Some(token) = call.query.get("continue") {
        if rv.is_some_and(|v| v != "0") {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let (rv, start) = decode_continue(token)?;
        return Ok((ReadAt::Exact(rv), Some(start)));
    }
    let at = match (rv, rv_match) {
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        (None, None) | (Some("0"), None | Some("NotOlderThan")) => ReadAt::Latest,
        (Some(v), None | Some("NotOlderThan")) => ReadAt::NotOlderThan(parse_rv(v)?),
        (Some("0"), Some("Exact")) => {
            return Err(ApiError::bad_request(
                "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
        (Some(v), Some("Exact")) => ReadAt::Exact(parse_rv(v)?),
        (_, Some(other)) => {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
    };
    Ok((at, None))
}

fn namespace_range<'a>(
    objects: &'a Objects,
    namespace: Option<&str>,
    after: Option<&ObjKey>,
) -> Box<dyn Iterator<Item = &'a Arc<StoredObj>> + 'a> {
    use std::ops::Bound;
    let lower = match (after, namespace) {
        (Some(k), _) => Bound::Excluded(k.clone()),
        (None, Some(ns)) => Bound::Included(ObjKey::new(ns, "")),
        (None, None) => Bound::Unbounded,
    };
    let upper = match namespace {
        Some(ns) => Bound::Excluded(ObjKey::new(&format!("{ns}\u{0}"), "")),
        None => Bound::Unbounded,
    };
    Box::new(objects.range((lower, upper)).map(|(_, v)| v))
}

/// `GET` on a collection.
pub fn list(
    state: &ApiState,
    kind: Kind,
    namespace: Option<&str>,
    call: &Call,
) -> ApiResult<Reply> {
    let filter = Filter::from_call(kind, namespace, call)?;
    let limit = call
        .query
        .int("limit")?
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let (at, after) = read_at(call)?;
    let (rv, objects) = match state.store.read(kind, at) {
        Err(e) if after.is_some() && e.status_code() == 410 => {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ));
        }
        other => other?,
    };
    let mut items: Vec<&Arc<StoredObj>> = Vec::new();
    let mut more = false;
    let mut remaining = 0usize;
    for obj in namespace_range(&objects, filter.namespace.as_deref(), after.as_ref()) {
        if !filter.matches(obj) {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            more = true;
            remaining += 1;
            if !filter.labels.is_empty() || !filter.fields.is_empty() {
                break;
            }
            continue;
        }
        items.push(obj);
    }
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if more {
        if let Some(last) = items.last() {
            meta["continue"] = json!(encode_continue(rv, &last.key));
        }
        if filter.labels.is_empty() && filter.fields.is_empty() {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    if table::wants_table(&call.accept) {
        let values: Vec<Value> = items.iter().map(|o| o.value()).collect();
        let include = call.query.get("includeObject").unwrap_or("Metadata");
        return Ok(Reply::json(
            StatusCode::OK,
            &table::render(kind, &values, meta, include),
        ));
    }
    // Assemble the list from the stored bytes: no re-encoding of 100,000 pods.
    let head = json!({"kind": format!("{}List", kind.kind()), "apiVersion": kind.api_version(), "metadata": meta});
    let head = serde_json::to_vec(&head).unwrap_or_default();
    let mut out = BytesMut::with_capacity(
        head.len() + items.iter().map(|o| o.json.len() + 1).sum::<usize>() + 16,
    );
    out.put_slice(&head[..head.len() - 1]);
    out.put_slice(b",\"items\":[");
    for (i, obj) in items.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(&obj.json);
    }
    out.put_slice(b"]}");
    Ok(Reply::bytes(StatusCode::OK, out.freeze()))
}

fn event_line(etype: &str, object: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(object.len() + 32);
    out.put_slice(b"{\"type\":\"");
    out.put_slice(etype.as_bytes());
    out.put_slice(b"\",\"object\":");
    out.put_slice(object);
    out.put_slice(b"}\n");
    out.freeze()
}

fn bookmark(kind: Kind, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": kind.kind(), "apiVersion": kind.api_version(), "metadata": meta});
    event_line("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default())
}

fn error_line(err: &ApiError) -> Bytes {
    event_line(
        "ERROR",
        &serde_json::to_vec(&err.to_status()).unwrap_or_default(),
    )
}

/// What a filtered watcher sees of an event: MODIFIED becomes ADDED/DELETED when the
/// object enters or leaves the selection, as on the real server.
fn translate(filter: &Filter, ev: &Event) -> Option<&'static str> {
    let now = filter.matches(&ev.obj);
    let before = ev.old.as_ref().is_some_and(|o| filter.matches(o));
    match ev.etype {
        EventType::Added => now.then_some("ADDED"),
        EventType::Deleted => (before || now).then_some("DELETED"),
        EventType::Modified => match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
    }
}

/// `GET ...?watch=true`: a chunked stream of JSON events.
pub fn watch(
    state: &Arc<ApiState>,
    kind: Kind,
    namespace: Option<&str>,
    name: Option<&str>,
    call: &Call,
) -> ApiResult<Reply> {
    let mut filter = Filter::from_call(kind, namespace, call)?;
    if let Some(name) = name {
        filter.fields = FieldSelector::parse(
            &format!("metadata.name={name}"),
            kind.kind(),
            kind == Kind::Pod,
        )?;
    }
    let bookmarks = call.query.flag("allowWatchBookmarks");
    let send_initial = call.query.get("sendInitialEvents").map(|v| v == "true");
    let rv = call.query.get("resourceVersion");
    if send_initial.is_some() && call.query.get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::new(
            crate::status::Reason::Invalid,
            "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan",
        ));
    }
    if send_initial == Some(true) && !bookmarks {
        return Err(ApiError::new(
            crate::status::Reason::Invalid,
            "allowWatchBookmarks: Forbidden: allowWatchBookmarks must be set to true when sendInitialEvents is true",
        ));
    }
    let timeout = match call.query.int("timeoutSeconds")? {
        Some(t) if t > 0 => Duration::from_secs(t as u64),
        // A negative timeout has already passed: the stream ends at once.
        Some(t) if t < 0 => Duration::ZERO,
        _ => Duration::from_secs(1800 + rand::random_range(0..1800)),
    };
    let faults = state.faults.get();
    let timeout = if faults.watch_close_after_secs > 0 {
        timeout.min(Duration::from_secs(faults.watch_close_after_secs))
    } else {
        timeout
    };
    // Unset or "0" (or sendInitialEvents) starts with the current state as ADDED events;
    // any other version resumes from the history after it.
    let from = match (send_initial, rv) {
        (Some(true), _) | (_, None | Some("0")) => None,
        (_, Some(v)) => Some(parse_rv(v)?),
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    if from.is_some() && faults.expire_resumed_watches {
        let err =
            ApiError::expired("too old resource version (expired by kube-sim fault injection)");
        let _ = tx.try_send(Ok(error_line(&err)));
        return Ok(Reply::stream(
            Body::from_stream(ReceiverStream::new(rx)),
            "application/json",
        ));
    }
    let subscription = match state.store.watch(kind, from) {
        Ok(s) => s,
        Err(e) if e.status_code() == 410 => {
            let _ = tx.try_send(Ok(error_line(&e)));
            return Ok(Reply::stream(
                Body::from_stream(ReceiverStream::new(rx)),
                "application/json",
            ));
        }
        Err(e) => return Err(e),
    };
    let state = state.clone();
    let initial_end = send_initial == Some(true);
    tokio::spawn(async move {
        let _ = run_watch(
            state,
            kind,
            filter,
            subscription,
            tx,
            bookmarks,
            initial_end,
            timeout,
        )
        .await;
    });
    Ok(Reply::stream(
        Body::from_stream(ReceiverStream::new(rx)),
        "application/json",
    ))
}

type Sender = mpsc::Sender<Result<Bytes, std::io::Error>>;

#[allow(clippy::too_many_arguments)]
async fn run_watch(
    state: Arc<ApiState>,
    kind: Kind,
    filter: Filter,
    (start_rv, start, mut rx): (u64, WatchStart, broadcast::Receiver<Arc<Event>>),
    tx: Sender,
    bookmarks: bool,
    initial_end: bool,
    timeout: Duration,
) -> Result<(), ()> {
    let send = |b: Bytes| {
        let tx = tx.clone();
        async move { tx.send(Ok(b)).await.map_err(|_| ()) }
    };
    let mut last_rv = start_rv;
    match start {
        WatchStart::Now(objects) => {
            for obj in objects.values().filter(|o| filter.matches(o)) {
                send(event_line("ADDED", &obj.json)).await?;
            }
            if initial_end {
                send(bookmark(kind, start_rv, true)).await?;
            }
        }
        WatchStart::Resume(backlog) => {
            for ev in backlog {
                last_rv = ev.rv;
                if let Some(t) = translate(&filter, &ev) {
                    send(event_line(t, &ev.obj.json)).await?;
                }
            }
        }
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(state.bookmark_interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = &mut deadline => return Ok(()),
            _ = state.shutdown.cancelled() => return Ok(()),
            _ = tx.closed() => return Err(()),
            _ = ticker.tick(), if bookmarks => send(bookmark(kind, last_rv, false)).await?,
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    // Already delivered through the backlog or the initial state.
                    if ev.rv <= last_rv {
                        continue;
                    }
                    last_rv = ev.rv;
                    if let Some(t) = translate(&filter, &ev) {
                        send(event_line(t, &ev.obj.json)).await?;
                    }
                }
                // Too slow: close; the client resumes from its last version.
                Err(broadcast::error::RecvError::Lagged(_)) => return Ok(()),
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let key = ObjKey::new("default", "web-1");
        let token = encode_continue(42, &key);
        let decoded = decode_continue(&token).ok();
        assert_eq!(decoded, Some((42, key)));
        assert!(decode_continue("not-a-token").is_err());
    }
}
