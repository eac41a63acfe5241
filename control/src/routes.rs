//! Pods → routes: which workspace pods the gateways may send traffic to.
//!
//! A pod is a workspace when it carries `nogoo9/type=workspace` and a valid
//! `nogoo9/workspace-id`. It is published `Ready` (routable) once its Ready condition is
//! true and it has an IP, and `Pending` before that (so the gateway answers 503 with
//! `Retry-After` instead of 404). A pod being deleted is withdrawn at once: it must not
//! take new traffic during its grace period.

use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::Pod;
use shared::ids::WorkspaceId;
use shared::names;
use shared::route::{Route, RouteState, UpstreamHost, WebOptions};

/// A pod's owner: the exact subject in the annotation the spawner writes.
pub fn owner_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::USER_SUB_ANNOTATION))
        .map(String::as_str)
}

/// The route a pod stands for, or `None` when it is not a (live) workspace pod.
pub fn route_for_pod(pod: &Pod, default_port: u16) -> Option<Route> {
    let meta = &pod.metadata;
    if meta.deletion_timestamp.is_some() {
        return None;
    }
    let labels = meta.labels.as_ref()?;
    if labels.get(names::TYPE_LABEL).map(String::as_str) != Some(names::TYPE_WORKSPACE) {
        return None;
    }
    let workspace_id = WorkspaceId::parse(labels.get(names::WORKSPACE_ID_LABEL)?).ok()?;
    let pod_uid = meta.uid.clone()?;
    let annotations = meta.annotations.as_ref();
    let named_port = annotations
        .and_then(|a| a.get(names::WORKSPACE_PORT_ANNOTATION))
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0);
    let port = named_port.unwrap_or(default_port);
    let status = pod.status.as_ref();
    let ip: Option<IpAddr> = status
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let state = if ready && ip.is_some() {
        RouteState::Ready
    } else {
        RouteState::Pending
    };
    Some(Route {
        workspace_id,
        pod_uid,
        namespace: meta.namespace.clone().unwrap_or_default(),
        state,
        addr: ip.map(|ip| SocketAddr::new(ip, port)),
        owner_sub: annotations
            .and_then(|a| a.get(names::USER_SUB_ANNOTATION))
            .cloned(),
        port_is_default: named_port.is_none(),
        web: web_options(pod),
    })
}

/// How the gateway serves the pod: the ports it declares (host routing's
/// `<port>-<id>` form reaches only these) and its template's serving annotations
/// (values the spawner did not accept fall back to the defaults).
fn web_options(pod: &Pod) -> WebOptions {
    let annotations = pod.metadata.annotations.as_ref();
    let get = |name: &str| annotations.and_then(|a| a.get(name)).map(String::as_str);
    let mut ports: Vec<u16> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .filter(|p| *p != 0)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    WebOptions {
        ports,
        rewrite_responses: get(names::REWRITE_RESPONSES_ANNOTATION) != Some("false"),
        upstream_host: get(names::UPSTREAM_HOST_ANNOTATION)
            .and_then(UpstreamHost::parse)
            .unwrap_or_default(),
        ..WebOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(extra: serde_json::Value) -> Pod {
        let mut base = json!({
            "metadata": {
                "name": "ws-alice-demo", "namespace": "default", "uid": "uid-1",
                "labels": {"nogoo9/type": "workspace", "nogoo9/workspace-id": "demo"},
                "annotations": {"nogoo9/user-sub": "alice@example.com"}
            },
            "spec": {"containers": [{"name": "w", "image": "x"}]},
            "status": {"podIP": "127.10.0.7", "conditions": [{"type": "Ready", "status": "True"}]}
        });
        json_patch::merge(&mut base, &extra);
        serde_json::from_value(base).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn declared_ports_and_serving_annotations_reach_the_route() {
        let p = pod(json!({
            "metadata": {"annotations": {"nogoo9/rewrite-responses": "false", "nogoo9/upstream-host": "pod"}},
            "spec": {"containers": [
                {"name": "w", "image": "x", "ports": [{"containerPort": 8080}, {"containerPort": 3000}]},
                {"name": "side", "image": "y", "ports": [{"containerPort": 8080}]}
            ]}
        }));
        let web = route_for_pod(&p, 3000).map(|r| r.web).unwrap_or_default();
        assert_eq!(web.ports, vec![3000, 8080]);
        assert!(!web.rewrite_responses);
        assert_eq!(web.upstream_host, UpstreamHost::Pod);
        let plain = route_for_pod(&pod(json!({})), 3000)
            .map(|r| r.web)
            .unwrap_or_default();
        assert_eq!(plain, WebOptions::default());
        assert!(plain.rewrite_responses);
    }

    #[test]
    fn a_ready_workspace_pod_is_routable_at_its_port() {
        let r = route_for_pod(&pod(json!({})), 3000).unwrap_or_else(|| panic!("route"));
        assert_eq!(r.workspace_id.as_str(), "demo");
        assert_eq!(r.state, RouteState::Ready);
        assert_eq!(
            r.upstream(),
            Some("127.10.0.7:3000".parse().unwrap_or_else(|e| panic!("{e}")))
        );
        assert_eq!(r.owner_sub.as_deref(), Some("alice@example.com"));
        assert!(
            r.port_is_default,
            "no annotation: each gateway's default port"
        );
        let annotated =
            pod(json!({"metadata": {"annotations": {"nogoo9/workspace-port": "8888"}}}));
        assert_eq!(
            route_for_pod(&annotated, 3000)
                .and_then(|r| r.addr)
                .map(|a| a.port()),
            Some(8888)
        );
        assert_eq!(
            route_for_pod(&annotated, 3000).map(|r| r.port_is_default),
            Some(false)
        );
        let bad_port = pod(json!({"metadata": {"annotations": {"nogoo9/workspace-port": "http"}}}));
        assert_eq!(
            route_for_pod(&bad_port, 3000)
                .and_then(|r| r.addr)
                .map(|a| a.port()),
            Some(3000)
        );
    }

    #[test]
    fn unready_pods_are_pending_and_others_are_not_routes() {
        let unready =
            pod(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        assert_eq!(
            route_for_pod(&unready, 3000).map(|r| (r.state, r.upstream())),
            Some((RouteState::Pending, None))
        );
        let no_ip = pod(json!({"status": {"podIP": null}}));
        assert_eq!(
            route_for_pod(&no_ip, 3000).map(|r| r.state),
            Some(RouteState::Pending)
        );
        assert!(
            route_for_pod(
                &pod(json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}})),
                3000
            )
            .is_none()
        );
        assert!(
            route_for_pod(
                &pod(json!({"metadata": {"labels": {"nogoo9/type": "other"}}})),
                3000
            )
            .is_none()
        );
        assert!(
            route_for_pod(
                &pod(json!({"metadata": {"labels": {"nogoo9/workspace-id": "Not/Valid"}}})),
                3000
            )
            .is_none()
        );
    }
}
