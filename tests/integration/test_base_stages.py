"""Preflight, host prep, containerd, keepalived + haproxy and etcd with TLS, for real on the
lab's HA layout: what --dry says equals what the run does, a second run changes nothing, and
the VIP and etcd survive losing a machine."""

import json
import socket
import time

import pytest

from support import run_pyinfra, vip_holders, wait_until

pytestmark = pytest.mark.lab
DEPLOY = "tests/integration/base_stages.py"
ETCDCTL = ("sudo etcdctl --endpoints={endpoints} --cacert=/etc/etcd/pki/ca.crt "
           "--cert=/etc/etcd/pki/admin-client.crt --key=/etc/etcd/pki/admin-client.key")


@pytest.fixture(scope="module")
def deployed(lab_session, tmp_path_factory):
    """A fresh lab, planned with --dry, then deployed: (plan, changes, lab, state dir). Taken
    down after the module: the lab's own tests expect machines nothing was deployed on."""
    lab = lab_session
    lab.down()
    lab.up()
    state = tmp_path_factory.mktemp("state")
    started = time.monotonic()
    plan, _ = run_pyinfra(DEPLOY, lab.cluster_file, state, dry=True)
    planned = time.monotonic()
    changes, _ = run_pyinfra(DEPLOY, lab.cluster_file, state)
    print(f"\n--dry on a fresh lab: {planned - started:.1f} s; the run: {time.monotonic() - planned:.1f} s")
    yield plan, changes, lab, state
    lab.down()


def test_dry_run_on_a_fresh_lab_lists_every_change_the_run_makes(deployed):
    plan, changes, _, _ = deployed
    assert changes, "the run changed nothing on a fresh lab"
    missing = {op: hosts - plan.get(op, set()) for op, hosts in changes.items() if hosts - plan.get(op, set())}
    assert not missing, f"changes the dry run did not announce: {missing}"
    # announced but not needed in the end: a service the package's own install already started
    extra = {op: hosts - changes.get(op, set()) for op, hosts in plan.items() if hosts - changes.get(op, set())}
    assert all(op.split(" | ")[-1].startswith("Run ") for op in extra), \
        f"changes the dry run announced that the run did not make: {extra}"


def test_second_run_and_dry_run_change_nothing(deployed):
    _, _, lab, state = deployed
    started = time.monotonic()
    again, _ = run_pyinfra(DEPLOY, lab.cluster_file, state)
    print(f"\nsecond run: {time.monotonic() - started:.1f} s")
    assert again == {}
    dry, _ = run_pyinfra(DEPLOY, lab.cluster_file, state, dry=True)
    assert dry == {}


def test_vip_moves_when_its_holder_stops(deployed):
    _, _, lab, _ = deployed
    (vip,) = lab.config.vips
    lb_hosts = [h.name for h in lab.config.hosts if "lb" in h.roles]
    holders = wait_until(lambda: vip_holders(lab, vip, lb_hosts), 30, interval=0.5)
    assert len(holders) == 1, f"VIP held by {holders}"
    holder = holders[0]
    for name in ("haproxy", "keepalived"):
        assert lab.ssh(holder, f"systemctl is-active {name}", check=False).stdout.strip() == "active"
    lab.cli("stop", holder)
    try:
        started = time.monotonic()
        others = wait_until(lambda: [h for h in vip_holders(lab, vip, lb_hosts) if h != holder], 30, interval=0.5)
        print(f"\nVIP moved from {holder} to {others} in {time.monotonic() - started:.1f} s")
        assert others
        with socket.create_connection((vip, 6443), timeout=5):
            pass  # haproxy on the new holder accepts on the VIP
    finally:
        lab.cli("start", holder)


def test_the_vip_holder_stopped_and_started_ten_times_comes_back_every_time(deployed):
    """`lab stop` then `lab start` of whichever lb host holds the VIP, ten times: each start
    ends with ssh answering and keepalived and haproxy running again, and the VIP is always
    held by exactly one lb host."""
    _, _, lab, _ = deployed
    (vip,) = lab.config.vips
    lb_hosts = [h.name for h in lab.config.hosts if "lb" in h.roles]
    for cycle in range(10):
        holders = wait_until(lambda: vip_holders(lab, vip, lb_hosts), 30, interval=0.5)
        assert len(holders) == 1, f"cycle {cycle}: VIP held by {holders}"
        lab.cli("stop", holders[0])
        lab.cli("start", holders[0])  # returns once ssh answers
        for name in ("haproxy", "keepalived"):
            assert wait_until(lambda: lab.ssh(holders[0], f"systemctl is-active {name}", check=False)
                              .stdout.strip() == "active", 30), f"cycle {cycle}: {name} not back on {holders[0]}"


def test_etcd_keeps_serving_without_one_member(deployed):
    _, _, lab, _ = deployed
    members = [h for h in lab.config.hosts if "etcd" in h.roles]
    endpoints = ",".join(f"https://{h.address}:2379" for h in members)
    first, last = members[0], members[-1]
    etcdctl = ETCDCTL.format(endpoints=endpoints)
    lab.ssh(first, f"{etcdctl} put kubeha-test before-the-fault")
    lab.cli("stop", last.name)
    try:
        alive = ",".join(f"https://{h.address}:2379" for h in members if h != last)
        health = lab.ssh(first, f"{ETCDCTL.format(endpoints=alive)} endpoint health", check=False)
        assert health.returncode == 0, health.stdout + health.stderr
        assert lab.ssh(first, f"{etcdctl} get kubeha-test --print-value-only").stdout.strip() == "before-the-fault"
    finally:
        lab.cli("start", last.name)
    back = wait_until(lambda: lab.ssh(first, f"{etcdctl} endpoint health", check=False).returncode == 0, 90, 2)
    assert back, "the stopped member did not come back healthy"


@pytest.mark.parametrize("started_as, fails_with", [
    # a member of the first bootstrap is refused by the others at every start (first: the
    # member replaced here joins again as a new member, under another ID)
    ("new", "has already been bootstrapped"),
    # a member that joined a running cluster comes back under its old member ID with an empty
    # log, and panics at every start
    ("existing", "is out of range"),
])
def test_a_member_whose_data_dir_was_wiped_is_replaced_by_the_etcd_stage(deployed, started_as, fails_with):
    """A data dir wiped under an enabled unit: etcd fails at every start. The etcd stage sees it,
    moves what is left of the data aside, removes and adds the member again; then nothing is
    left to change."""
    _, _, lab, state = deployed
    members = [h for h in lab.config.hosts if "etcd" in h.roles]
    first, wiped = members[0], members[-1]
    etcdctl = ETCDCTL.format(endpoints=",".join(f"https://{h.address}:2379" for h in members))
    lab.ssh(first, f"{etcdctl} put kubeha-test before-the-wipe")
    lab.sudo(wiped.name, "systemctl stop etcd && rm -rf /var/lib/kubeha-etcd/member && "
                         f"sed -i 's/^INITIAL_CLUSTER_STATE=.*/INITIAL_CLUSTER_STATE={started_as}/' "
                         "/etc/etcd/initial-cluster.env && systemctl start --no-block etcd")
    failed = wait_until(lambda: fails_with in lab.sudo(
        wiped.name, "journalctl -u etcd -o cat --no-pager -n 200", check=False).stdout, 60, 2)
    assert failed, f"etcd with a wiped data dir did not fail with {fails_with!r}"
    changes, _ = run_pyinfra("tasks/etcd.py", lab.cluster_file, state)
    assert any(name.endswith("etcd: add a missing member through a healthy one") and hosts == {wiped.name}
               for name, hosts in changes.items()), changes
    health = lab.ssh(first, f"{etcdctl} endpoint health", check=False)
    assert health.returncode == 0, health.stdout + health.stderr
    listed = json.loads(lab.ssh(first, f"{etcdctl} member list -w json").stdout)["members"]
    assert sorted(m.get("name", "") for m in listed) == sorted(h.name for h in members)
    assert not any(m.get("isLearner") for m in listed)
    assert lab.ssh(wiped.name, f"{ETCDCTL.format(endpoints=f'https://{wiped.address}:2379')} get kubeha-test "
                               "--print-value-only --consistency=s").stdout.strip() == "before-the-wipe"
    assert lab.sudo(wiped.name, "ls /var/lib/kubeha-etcd").stdout.split().count("member") == 1
    assert run_pyinfra("tasks/etcd.py", lab.cluster_file, state)[0] == {}
