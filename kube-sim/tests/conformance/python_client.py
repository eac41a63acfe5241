"""Conformance of kube-sim through the official Kubernetes Python client.

Run by `tests/it/python_client.rs` against a kube-sim process:
    python3 python_client.py KUBECONFIG
Exits non-zero with the failing check on the first mismatch.
"""

import json
import sys
import threading
import time
import unittest
import urllib.request

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

KUBECONFIG = sys.argv.pop(1)


def wait_for(what, check, secs=15.0):
    deadline = time.time() + secs
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def workspace_pod(name, labels=None):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": "workspace"}},
        "spec": {
            "containers": [{
                "name": "workspace",
                "image": "node:20-alpine",
                "command": ["sleep", "infinity"],
                "volumeMounts": [{"name": "workspace-storage", "mountPath": "/workspace"}],
            }],
            "volumes": [{"name": "workspace-storage", "emptyDir": {}}],
        },
    }


class KubeSimConformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        config.load_kube_config(config_file=KUBECONFIG)
        cls.core = client.CoreV1Api()
        cls.authz = client.AuthorizationV1Api()

    def ready(self, name, ns="default"):
        def check():
            pod = self.core.read_namespaced_pod(name, ns)
            conds = pod.status.conditions or []
            return pod if any(c.type == "Ready" and c.status == "True" for c in conds) else None
        return wait_for(f"pod {name} ready", check)

    def test_pod_lifecycle_selectors_logs_and_delete(self):
        self.core.create_namespaced_pod("default", workspace_pod("py-a", {"app": "ws", "tier": "web"}))
        self.core.create_namespaced_pod("default", workspace_pod("py-b", {"app": "ws"}))
        pod = self.ready("py-a")
        self.ready("py-b")
        self.assertEqual(pod.status.phase, "Running")
        self.assertTrue(pod.status.pod_ip.startswith("127."))
        body = json.load(urllib.request.urlopen(f"http://{pod.status.pod_ip}:3000/py/path?q=1", timeout=5))
        self.assertEqual((body["pod"], body["path"], body["query"]), ("py-a", "/py/path", "q=1"))

        names = lambda items: sorted(p.metadata.name for p in items)
        self.assertEqual(names(self.core.list_namespaced_pod("default", label_selector="tier=web").items), ["py-a"])
        self.assertEqual(names(self.core.list_namespaced_pod("default", label_selector="app=ws,!tier").items), ["py-b"])
        self.assertEqual(names(self.core.list_pod_for_all_namespaces(field_selector="metadata.name=py-b").items), ["py-b"])
        page = self.core.list_namespaced_pod("default", label_selector="app=ws", limit=1)
        self.assertEqual(len(page.items), 1)
        rest = self.core.list_namespaced_pod("default", label_selector="app=ws", limit=1, _continue=page.metadata._continue)
        self.assertEqual(names(page.items + rest.items), ["py-a", "py-b"])

        logs = self.core.read_namespaced_pod_log("py-a", "default", tail_lines=5)
        self.assertIn("built-in workspace app", logs)

        patched = self.core.patch_namespaced_pod("py-a", "default", {"metadata": {"labels": {"patched": "yes"}}})
        self.assertEqual(patched.metadata.labels["patched"], "yes")

        self.core.delete_namespaced_pod("py-a", "default")
        wait_for("py-a removal", lambda: not any(p.metadata.name == "py-a" for p in self.core.list_namespaced_pod("default").items))
        with self.assertRaises(ApiException) as ctx:
            self.core.read_namespaced_pod("py-a", "default")
        self.assertEqual(ctx.exception.status, 404)
        self.assertEqual(json.loads(ctx.exception.body)["reason"], "NotFound")

    def test_delete_answers_like_the_real_server(self):
        """Every delete the product makes, with the answer the real API server gives:
        pods and service accounts answer the deleted object (ReturnDeletedObject),
        immediate or graceful; config maps answer a Status; a namespace answers itself
        while it terminates."""
        self.core.create_namespaced_pod("default", workspace_pod("py-now"))
        self.ready("py-now")
        gone = self.core.delete_namespaced_pod("py-now", "default", grace_period_seconds=0)
        self.assertIsInstance(gone, client.V1Pod)
        self.assertEqual(gone.metadata.name, "py-now")
        with self.assertRaises(ApiException) as ctx:
            self.core.read_namespaced_pod("py-now", "default")
        self.assertEqual(ctx.exception.status, 404, "immediate deletion is immediate")

        self.core.create_namespaced_pod("default", workspace_pod("py-grace"))
        self.ready("py-grace")
        terminating = self.core.delete_namespaced_pod("py-grace", "default", grace_period_seconds=5)
        self.assertIsInstance(terminating, client.V1Pod)
        self.assertIsNotNone(terminating.metadata.deletion_timestamp)
        self.assertEqual(terminating.metadata.deletion_grace_period_seconds, 5)

        self.core.create_namespaced_service_account("default", {"metadata": {"name": "py-sa"}})
        sa = self.core.delete_namespaced_service_account("py-sa", "default")
        self.assertIsInstance(sa, client.V1ServiceAccount)
        self.assertEqual(sa.metadata.name, "py-sa")

        self.core.create_namespaced_config_map("default", {"metadata": {"name": "py-del"}, "data": {"a": "1"}})
        cm = self.core.read_namespaced_config_map("py-del", "default")
        status = self.core.delete_namespaced_config_map(
            "py-del", "default", body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=cm.metadata.uid)))
        # The client declares these answers as plain objects: a Status here.
        self.assertEqual(status["kind"], "Status")
        self.assertEqual((status["status"], status["details"]["name"], status["details"]["kind"]),
                         ("Success", "py-del", "configmaps"))

        self.core.create_namespace({"metadata": {"name": "py-ns-del"}})
        ns = self.core.delete_namespace("py-ns-del")
        ns = ns if isinstance(ns, dict) else self.core.api_client.sanitize_for_serialization(ns)
        self.assertEqual((ns["kind"], ns["status"]["phase"]), ("Namespace", "Terminating"))

    def test_watch_sees_added_modified_deleted(self):
        start = self.core.list_namespaced_config_map("default").metadata.resource_version
        events = []
        w = watch.Watch()

        def consume():
            for ev in w.stream(self.core.list_namespaced_config_map, "default", label_selector="watch=py",
                               resource_version=start, timeout_seconds=10):
                events.append((ev["type"], ev["object"].metadata.name))
                if len(events) == 3:
                    w.stop()

        t = threading.Thread(target=consume)
        t.start()
        time.sleep(0.3)
        self.core.create_namespaced_config_map("default", {"metadata": {"name": "py-w", "labels": {"watch": "py"}}, "data": {"a": "1"}})
        self.core.patch_namespaced_config_map("py-w", "default", {"data": {"a": "2"}})
        self.core.delete_namespaced_config_map("py-w", "default")
        t.join(15)
        self.assertEqual(events, [("ADDED", "py-w"), ("MODIFIED", "py-w"), ("DELETED", "py-w")])

    def test_config_map_crud_and_stale_update_conflict(self):
        cm = self.core.create_namespaced_config_map("default", {"metadata": {"name": "py-cm"}, "data": {"spec": "{}"}})
        self.assertEqual(len(cm.metadata.uid), 36)
        got = self.core.read_namespaced_config_map("py-cm", "default")
        got.data["spec"] = '{"containers": []}'
        updated = self.core.replace_namespaced_config_map("py-cm", "default", got)
        self.assertGreater(int(updated.metadata.resource_version), int(cm.metadata.resource_version))
        got.data["spec"] = "stale"
        with self.assertRaises(ApiException) as ctx:
            self.core.replace_namespaced_config_map("py-cm", "default", got)
        self.assertEqual(ctx.exception.status, 409)
        self.assertEqual(json.loads(ctx.exception.body)["reason"], "Conflict")
        with self.assertRaises(ApiException) as ctx:
            self.core.create_namespaced_config_map("default", {"metadata": {"name": "py-cm"}})
        self.assertEqual((ctx.exception.status, json.loads(ctx.exception.body)["reason"]), (409, "AlreadyExists"))
        with self.assertRaises(ApiException) as ctx:
            self.core.create_namespaced_config_map("default", {"metadata": {"name": "Not_Valid"}})
        self.assertEqual(ctx.exception.status, 422)
        self.assertIn("metadata.name", json.loads(ctx.exception.body)["message"])
        self.core.delete_namespaced_config_map("py-cm", "default")
        with self.assertRaises(ApiException) as ctx:
            self.core.read_namespaced_config_map("py-cm", "default")
        self.assertEqual(ctx.exception.status, 404)

    def test_secret_data_and_a_claim_that_outlives_its_pod(self):
        # stringData is folded into base64 data and never read back; type defaults to Opaque.
        secret = self.core.create_namespaced_secret("default", {
            "metadata": {"name": "py-secret"}, "stringData": {"token": "s3cr3t"}})
        self.assertEqual(secret.type, "Opaque")
        got = self.core.read_namespaced_secret("py-secret", "default")
        self.assertEqual(got.data, {"token": "czNjcjN0"})
        self.assertIsNone(got.string_data)
        self.core.delete_namespaced_secret("py-secret", "default")
        claim = self.core.create_namespaced_persistent_volume_claim("default", {
            "metadata": {"name": "py-data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
        self.assertEqual(claim.status.phase, "Bound")
        mount = {"volumeMounts": [{"name": "d", "mountPath": "/d"}]}
        volumes = [{"name": "d", "persistentVolumeClaim": {"claimName": "py-data"}}]
        self.core.create_namespaced_pod("default", {"metadata": {"name": "py-writer"}, "spec": {
            "containers": [{"name": "c", "image": "local", "command": ["sh", "-c", "echo kept > /d/f; echo written; sleep 3600"], **mount}],
            "volumes": volumes}})
        self.ready("py-writer")
        wait_for("the write", lambda: "written" in self.core.read_namespaced_pod_log("py-writer", "default"))
        self.core.delete_namespaced_pod("py-writer", "default", grace_period_seconds=0)
        wait_for("the writer gone", lambda: not any(
            p.metadata.name == "py-writer" for p in self.core.list_namespaced_pod("default").items))
        self.core.create_namespaced_pod("default", {"metadata": {"name": "py-reader"}, "spec": {
            "containers": [{"name": "c", "image": "local", "command": ["sh", "-c", "cat /d/f; sleep 3600"], **mount}],
            "volumes": volumes}})
        self.ready("py-reader")
        self.assertEqual(wait_for("the reader's log", lambda: self.core.read_namespaced_pod_log("py-reader", "default") or None), "kept\n")
        self.core.delete_namespaced_pod("py-reader", "default", grace_period_seconds=0)
        self.core.delete_namespaced_persistent_volume_claim("py-data", "default")

    def test_expired_watch_is_410(self):
        # The simulator runs with a short history; churn past it, then resume from the start.
        start = self.core.list_namespaced_config_map("default").metadata.resource_version
        for i in range(60):
            self.core.create_namespaced_config_map("default", {"metadata": {"name": f"py-churn-{i}"}})
        with self.assertRaises(ApiException) as ctx:
            for _ in watch.Watch().stream(self.core.list_namespaced_config_map, "default",
                                          resource_version=start, timeout_seconds=2):
                pass
        self.assertEqual(ctx.exception.status, 410)

    def test_denied_verb_is_403_and_access_review_agrees(self):
        self.core.create_namespace({"metadata": {"name": "py-locked"}})
        self.core.create_namespaced_pod("py-locked", workspace_pod("py-locked"))
        with self.assertRaises(ApiException) as ctx:
            self.core.delete_namespaced_pod("py-locked", "py-locked")
        self.assertEqual(ctx.exception.status, 403)
        self.assertEqual(json.loads(ctx.exception.body)["reason"], "Forbidden")
        review = self.authz.create_self_subject_access_review({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "delete", "resource": "pods", "namespace": "py-locked"}}})
        self.assertFalse(review.status.allowed)
        review = self.authz.create_self_subject_access_review({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}}})
        self.assertTrue(review.status.allowed)


if __name__ == "__main__":
    unittest.main(verbosity=2)
