"""What every topology must show once deploy.py has run on fresh lab machines. A test module
subclasses ClusterChecks and provides a `cluster` fixture (a DeployedCluster)."""

import json
import shlex

from artifacts import layout
from e2e_cluster import workload_manifest
from support import wait_until

WORKLOAD = "e2e-web"

# What `kubectl auth can-i` must answer for the kubectl user, by the ClusterRole it was given.
RIGHTS = {
    "cluster-admin": [("'*' '*'", True)],
    "admin": [("create deployments", True), ("get nodes", False), ("create clusterrolebindings", False)],
    "edit": [("create deployments", True), ("get nodes", False), ("create clusterrolebindings", False),
             ("create rolebindings", False)],
    "view": [("list pods", True), ("create deployments", False), ("get secrets", False)],
}


def etcd_endpoint_health(cluster) -> list[dict]:
    """`etcdctl endpoint health` over TLS for every member: external etcd from the first
    control plane's admin client, stacked etcd from inside its static pod."""
    if cluster.definition.etcd.topology == "external":
        members = [cluster.lab.host(h).address for h in cluster.hosts_with_role("etcd")]
        endpoints = ",".join(f"https://{address}:2379" for address in members)
        command = (f"sudo etcdctl --endpoints={endpoints} --cacert=/etc/etcd/pki/ca.crt "
                   "--cert=/etc/etcd/pki/admin-client.crt --key=/etc/etcd/pki/admin-client.key "
                   "endpoint health -w json")
        return json.loads(cluster.lab.ssh(cluster.first_control_plane, command).stdout)
    pki = "/etc/kubernetes/pki/etcd"
    result = cluster.kubectl(f"-n kube-system exec etcd-{cluster.first_control_plane} -- etcdctl "
                             f"--endpoints=https://127.0.0.1:2379 --cacert={pki}/ca.crt "
                             f"--cert={pki}/healthcheck-client.crt --key={pki}/healthcheck-client.key "
                             "endpoint health --cluster -w json")
    return json.loads(result.stdout)


def planned_on(plan, operation):
    """The hosts the plan names for the operation whose name ends with `operation`."""
    return set().union(*[hosts for name, hosts in plan.items() if name.endswith(operation)])


def dial(cluster, from_pod_ip, target, port, tries=1):
    """agnhost's /dial on the pod at from_pod_ip, asked from a control plane: the
    hostnames that answered an HTTP request the pod made to target:port."""
    url = (f"http://{from_pod_ip}:8080/dial?request=hostname&protocol=http&host={target}"
           f"&port={port}&tries={tries}")
    output = cluster.curl(cluster.running_control_plane, url, timeout=30)
    try:
        return json.loads(output).get("responses") or []
    except json.JSONDecodeError:
        return []


class ClusterChecks:
    def test_dry_run_on_fresh_machines_names_every_cluster_action(self, cluster):
        planes = cluster.hosts_with_role("control_plane")
        assert planned_on(cluster.plan, "kubeadm init on the first control plane") == {planes[0]}
        assert planned_on(cluster.plan, "kubeadm join as a control plane, one at a time") == set(planes[1:])
        assert planned_on(cluster.plan, "kubeadm join as a worker") == set(cluster.hosts_with_role("worker"))
        assert planned_on(cluster.plan, "Install Calico") == {planes[0]}
        missing = {op: hosts - cluster.plan.get(op, set()) for op, hosts in cluster.changes.items()
                   if hosts - cluster.plan.get(op, set())}
        assert not missing, f"changes the dry run did not announce: {missing}"

    def test_every_node_is_ready_and_every_etcd_member_healthy_over_tls(self, cluster):
        assert wait_until(lambda: cluster.all_ready(cluster.nodes), 120), cluster.node_readiness()
        assert set(cluster.node_readiness()) == set(cluster.nodes)
        health = etcd_endpoint_health(cluster)
        members = {cluster.lab.host(h).address for h in cluster.hosts_with_role("etcd")}
        assert {entry["endpoint"] for entry in health} == {f"https://{a}:2379" for a in members}
        assert all(entry["health"] for entry in health), health

    def test_calico_and_coredns_run(self, cluster):
        def running(selector, namespace):
            pods = cluster.pods(namespace, selector)
            return pods and all(p["status"]["phase"] == "Running" and all(
                c["ready"] for c in p["status"].get("containerStatuses", [])) for p in pods) and pods

        calico = wait_until(lambda: running("k8s-app=calico-node", "kube-system"), 180, interval=5)
        assert calico, cluster.kubectl("get pods -A -o wide").stdout
        assert {p["spec"]["nodeName"] for p in calico} == set(cluster.nodes)
        assert wait_until(lambda: running("k8s-app=kube-dns", "kube-system"), 120, interval=5)

    def test_kubectl_user_has_its_own_certificate_and_only_its_rights(self, cluster):
        user = cluster.definition.kubectl_user
        runners = {
            "first control plane": lambda args, check=True: cluster.kubectl(args, user=user.name, check=check),
            "gateway, through the VIP": lambda args, check=True: cluster.local_kubectl(shlex.split(args), check=check),
        }
        for where, run in runners.items():
            who = json.loads(run("auth whoami -o json").stdout)["status"]["userInfo"]
            assert who["username"] == user.name, where
            assert user.group in who["groups"] and "system:masters" not in who["groups"], (where, who)
            for question, allowed in RIGHTS[user.cluster_role]:
                answer = run(f"auth can-i {question}", check=False).stdout.strip()
                assert answer == ("yes" if allowed else "no"), (where, question, answer)
        server = cluster.local_kubectl(["config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"])
        assert server.stdout == f"https://{cluster.vip}:{cluster.definition.api.port}"

    def test_a_workload_on_every_node_answers_across_machines_and_through_its_service(self, cluster):
        user = cluster.definition.kubectl_user.name
        image = layout.image_refs()["agnhost"]
        cluster.kubectl("apply -f -", user=user, stdin=workload_manifest(WORKLOAD, len(cluster.nodes), image))
        try:
            cluster.kubectl(f"rollout status deployment/{WORKLOAD} --timeout=240s", user=user, timeout=300)
            pods = cluster.pods("default", f"app={WORKLOAD}")
            by_node = {p["spec"]["nodeName"]: p for p in pods}
            assert set(by_node) == set(cluster.nodes), "the pods are not one per node"
            if cluster.definition.kubernetes.control_planes_schedulable:
                taints = [t for n in cluster.kubectl_json("get nodes")["items"]
                          for t in n["spec"].get("taints", []) if t["effect"] == "NoSchedule"]
                assert not taints, f"schedulable control planes still carry NoSchedule taints: {taints}"
            # every pod reaches every other pod on another machine, by its pod IP
            for source in pods:
                for target in pods:
                    if target is not source:
                        answered = dial(cluster, source["status"]["podIP"], target["status"]["podIP"], 8080)
                        assert answered == [target["metadata"]["name"]], \
                            (source["spec"]["nodeName"], target["spec"]["nodeName"], answered)
            # and the Service by its DNS name, through CoreDNS and kube-proxy, from every node's pod
            for source in pods:
                answered = dial(cluster, source["status"]["podIP"], f"{WORKLOAD}.default.svc.cluster.local", 80,
                                tries=len(pods) * 4)
                assert set(answered) <= {p["metadata"]["name"] for p in pods} and len(set(answered)) > 1, \
                    (source["spec"]["nodeName"], answered)
        finally:
            cluster.kubectl(f"delete deployment,service {WORKLOAD} --wait=false", user=user, check=False)

    def test_a_second_run_and_a_dry_run_change_nothing(self, cluster):
        assert cluster.timed("no-op re-run", cluster.deploy) == {}
        assert cluster.timed("--dry on the converged cluster", lambda: cluster.deploy(dry=True)) == {}


class VipHolderLoss:
    """The machine holding the VIP stops: the API answers through the VIP again within
    OUTAGE_LIMIT seconds, another machine holds it, and kubectl from the gateway keeps working."""

    OUTAGE_LIMIT = 10

    def test_the_api_answers_through_the_vip_within_seconds_when_its_holder_stops(self, cluster):
        failover = cluster.stop_vip_holder()
        try:
            print(f"\n{cluster.name}: VIP failover: {failover}")
            cluster.times["VIP failover: API not answering"] = failover.outage_seconds
            assert failover.outage_seconds < self.OUTAGE_LIMIT
            others = [n for n in cluster.nodes if n != failover.holder]
            assert wait_until(lambda: cluster.all_ready(others), 60), cluster.node_readiness()
            holders = cluster.vip_holders()
            assert holders and failover.holder not in holders
            # kubectl from the gateway keeps working, with the user's own rights
            assert cluster.local_kubectl(["get", "pods", "-n", "kube-system", "-o", "name"]).stdout.split()
        finally:
            cluster.start(failover.holder)
        assert wait_until(lambda: cluster.all_ready(cluster.nodes), 240, interval=5), cluster.node_readiness()
