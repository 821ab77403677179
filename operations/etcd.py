"""Operations on the external etcd cluster, decided from what the members say when they run.

Each operation reads its facts just before it runs (pyinfra evaluates an operation's body
again at execution, after the plan), so every decision rests on the cluster as it is at that
moment, never on the plan's stale view, and a converged cluster gets no command at all:

- `decide_bootstrap` (all members at once): a new cluster, when no member answers and no
  reachable member has a data dir, gets INITIAL_CLUSTER_STATE=new on every member.
- `start` (all members at once): the members that can start on their own: all of a new
  cluster together (etcd waits for a quorum), and stopped members that hold data.
- `join` (one member at a time): a member missing from a running cluster is added as a
  learner through a healthy member, started with INITIAL_CLUSTER_STATE=existing, promoted
  once it has caught up; a member whose data dir is gone (a replaced machine) or whose log
  is lost (etcd panics at start: the cluster committed entries it does not hold) is removed
  and added again with an empty data dir.
- `restart_changed` (one member at a time): a member whose unit or certificates changed
  since it started is restarted, only while the others keep a quorum, and the next one waits
  until it is healthy again.

etcdctl runs on the member itself with the admin client certificate and talks to the members'
client URLs, so no decision needs another host's connection, and a member whose host is down
only shows up as an unhealthy endpoint. The one exception is the new-cluster check, which
reads the other members' data dirs; a member that cannot be reached is then reported and left
out.
"""

import shlex

from pyinfra import host, logger, state
from pyinfra.api import operation
from pyinfra.facts.files import Directory, File, FileContents
from pyinfra.facts.systemd import SystemdStatus

from cluster import paths
from cluster.etcd import initial_env
from facts.etcd import EtcdHealth, EtcdLogLost, EtcdMembers
from operations.failure import fail, retry
from operations.config import config_file

SERVICE = "etcd"
# a member may take retry()'s 60 x 2 s to become healthy
CHANGE_ATTEMPTS = 15  # x 2 s: a membership change refused as "unhealthy cluster"


# What a member knows about itself and about the cluster, read when the operation runs.

def _has_data(etcd, pyinfra_host=None):
    return bool((pyinfra_host or host).get_fact(Directory, path=etcd.wal_dir))


def _active():
    return host.get_fact(SystemdStatus, services=f"{SERVICE}.service").get(f"{SERVICE}.service", False)


def _file_lines(path):
    return [line.strip() for line in host.get_fact(FileContents, path=path) or []]


def _env_state():
    for line in _file_lines(paths.ETCD_ENV_FILE):
        if line.startswith("INITIAL_CLUSTER_STATE="):
            return line.split("=", 1)[1]
    return None


def _members(etcd, extra_endpoints=()):
    """The membership as the cluster reports it (None: no member answers with a quorum)."""
    endpoints = list(dict.fromkeys(etcd.endpoints + list(extra_endpoints)))
    return host.get_fact(EtcdMembers, endpoints=endpoints, **etcd.tls)


def _health(etcd, endpoints):
    return host.get_fact(EtcdHealth, endpoints=list(endpoints), **etcd.tls) if endpoints else {}


def _listed(members, me):
    """This member's entry in the membership, by its peer URL (an unstarted member has no name)."""
    return next((m for m in members if me.peer_url in m["peer_urls"]), None) or \
        next((m for m in members if m["name"] == me.name), None)


def _has_started(entry):
    """A member that never started has no name and no client URL in the membership."""
    return bool(entry["name"] or entry["client_urls"])


def _voting(members):
    return [m for m in members if not m["is_learner"]]


def _warn(message):
    logger.warning(f"{host.print_prefix}{message}")


def _refuse(message):
    """Stops this member (and only it): a warning in the plan, a failing command when running."""
    _warn(message)
    yield from fail(message)


# Commands.

def _wait_healthy(etcd, me):
    check = etcd.etcdctl([me.client_url], "endpoint health >/dev/null 2>&1")
    return retry(check, f"etcd member {me.name} did not become healthy")


def _write_applied(applied):
    return f"echo {applied} > {paths.ETCD_APPLIED_FILE}"


def _write_env(etcd, me, state_name, pairs=None):
    content = initial_env(etcd, me.name, state_name, pairs)
    yield from config_file._inner(path=paths.ETCD_ENV_FILE, content=content, mode="0644")


# Decisions.

def bootstrap_decision(etcd, member):
    """Whether the cluster is new: (True, why) or (False, why).

    New means: this member has no data, no member answers, no reachable member has data, and
    the reachable members are a majority (a new cluster needs a quorum to start; the others
    join it later). A member that cannot be reached is left out and reported.
    """
    if _has_data(etcd):
        return False, "this member's data dir holds a cluster already"
    members = _members(etcd)
    if members is not None:
        return False, f"the cluster answers ({len(members)} members): joins are decided one member at a time"
    with_data, reachable, unreachable = [], [member], []
    for other in etcd.members:
        if other.name == member:
            continue
        other_host = state.inventory.get_host(other.inventory_name, None)
        if other_host is None or other_host in state.failed_hosts:
            unreachable.append(other.name)
            continue
        try:
            has_data = _has_data(etcd, other_host)
        except Exception as error:  # noqa: BLE001 - any failure to connect means "unknown"
            logger.debug("cannot read %s's etcd data dir: %s", other.name, error)
            unreachable.append(other.name)
            continue
        reachable.append(other.name)
        if has_data:
            with_data.append(other.name)
    if unreachable:
        _warn(f"etcd members not reachable, left out of this decision: {', '.join(unreachable)}")
    if with_data:
        return False, (f"no member answers, but {', '.join(with_data)} hold data: not a new cluster "
                       "(they are started next, then this member joins)")
    if len(reachable) < etcd.quorum:
        return False, (f"only {len(reachable)} of {len(etcd.members)} members can be reached: a new "
                       f"cluster needs {etcd.quorum} to start")
    return True, f"new cluster of {len(etcd.members)} members ({len(reachable)} reachable)"


@operation()
def decide_bootstrap(etcd, member):
    """Mark every member of a new cluster to start with INITIAL_CLUSTER_STATE=new.

    Runs on all members at once and only decides (writes the start-up environment file); the
    start is the next operation, so no member's start can change what another one sees here.
    """
    me = etcd.member(member)
    new, why = bootstrap_decision(etcd, member)
    if not new:
        host.noop(why)
        return
    yield from _write_env(etcd, me, "new")


@operation()
def start(etcd, member, applied):
    """Start the members that can start on their own, all at once, and wait until healthy.

    That is a member of a new cluster (its environment file says new and no member answers;
    they start together and etcd waits for the quorum) and a stopped member that holds data
    (after a full outage they come back together). A member that has no data and must join a
    running cluster is left to `join`.
    """
    me = etcd.member(member)
    name = me.name
    if _active():
        host.noop(f"etcd is running on {name}")
        return
    members = _members(etcd)
    if _has_data(etcd):
        if members is not None and _listed(members, me) is None:
            host.noop(f"{name} holds data but is no longer a member: `join` adds it again")
            return
        if host.get_fact(EtcdLogLost):
            host.noop(f"{name} lost its log: `join` replaces it with an empty member")
            return
        why = "its data dir holds the cluster"
    elif members is None and (_env_state() == "new" or (
            not state.is_executing and bootstrap_decision(etcd, member)[0])):
        why = "bootstrapping a new cluster with every member at once"
    else:
        host.noop(f"{name} has no data: it joins the running cluster in the next step")
        return
    logger.info(f"{host.print_prefix}starting etcd: {why}")
    yield f"systemctl start --no-block {SERVICE}"
    yield _wait_healthy(etcd, me)
    yield _write_applied(applied)


@operation()
def join(etcd, member, applied):
    """Make this host a started, voting member of the running cluster (run with _serial=True).

    - listed and started: nothing (also when its host is merely stopped: `start` handles it);
    - not listed, no data: `member add --learner` through the healthy members, start with
      INITIAL_CLUSTER_STATE=existing and the membership as the cluster reports it, promote
      once the learner has caught up, wait until healthy;
    - listed, has started before, data dir gone (a replaced machine) or log lost (its etcd
      panics "tocommit(N) is out of range" at every start, e.g. after its data dir was wiped
      while the unit stayed enabled): its data is moved aside, `member remove`, then as above;
      its old identity must go, since a member that lost its log must never vote;
    - not listed but holding data (it was removed): the data dir is moved aside, then as above;
    - listed, never started (added by an interrupted run, or a member of the first bootstrap
      that was down then): started with INITIAL_CLUSTER_STATE=existing, promoted if a learner.
    Adding one learner at a time is what etcd allows, and never lowers the quorum.
    """
    me = etcd.member(member)
    name = me.name
    members = _members(etcd)
    if members is None:
        if not state.is_executing:
            host.noop("no member answers yet: the cluster is bootstrapped or started before this step")
            return
        yield from _refuse(f"no etcd member answers with a quorum: {name} cannot join; start a "
                           "majority of the members first")
        return
    entry = _listed(members, me)
    has_data = _has_data(etcd)
    log_lost = bool(entry) and has_data and host.get_fact(EtcdLogLost)
    if entry and _has_started(entry) and has_data and not entry["is_learner"] and not log_lost:
        host.noop(f"{name} is a member ({entry['id']})")
        return
    others = [m for m in members if m is not entry]
    healthy = [url for url, ok in _health(etcd, _client_urls(etcd, others, me)).items() if ok]
    if not healthy:
        yield from _refuse(f"no healthy etcd member to change the membership through; {name} not added")
        return
    etcdctl = lambda args: etcd.etcdctl(healthy, args)  # noqa: E731 - requests go to healthy members

    # etcd refuses a membership change ("unhealthy cluster") until the member serving it has
    # been connected to every voting member for 5 s, e.g. right after the previous change or a
    # restart: such a change is retried, and counts as done once the membership shows it
    listed = f"{etcdctl('member list')} | grep -q -F"
    if log_lost:
        _warn(f"{name}'s etcd lost its log (the cluster committed entries its data dir does not hold): "
              "moving its data aside, removing and adding it again")
        yield from _move_data_aside(etcd)
        has_data = False
    if entry and _has_started(entry) and not has_data and (log_lost or not _active()):
        if not log_lost:
            _warn(f"{name} is listed as {entry['id']} but its data dir is gone (replaced machine?): "
                  "removing and adding it again")
        old_id = entry["id"]
        remove = etcdctl(f"member remove {old_id}")
        yield retry(f"{{ {remove} || ! {listed} '{old_id}, '; }}",
                     f"could not remove the old member {old_id} of {name}", attempts=CHANGE_ATTEMPTS)
        entry = None
    if entry is None:
        if has_data:
            _warn(f"{name} holds data but is not a member (it was removed): moving the data aside")
            yield from _move_data_aside(etcd)
        else:
            yield from _move_data_aside(etcd, leftovers=True)
        add = etcdctl(f"member add {me.name} --peer-urls={me.peer_url} --learner")
        yield retry(f"{{ {add} || {listed} ', {me.peer_url},'; }}", f"could not add {name} as a learner",
                     attempts=CHANGE_ATTEMPTS)
    # the membership this member starts into: the others as the cluster reports them, and itself
    pairs = [_name_and_peer_url(etcd, m) for m in others] + [(me.name, me.peer_url)]
    yield from _write_env(etcd, me, "existing", pairs)
    yield f"systemctl start --no-block {SERVICE}"
    if entry is None or entry["is_learner"]:
        member_id = f"$({etcdctl('member list')} | awk -F', ' '$4 == \"{me.peer_url}\" {{print $1}}')"
        yield retry(etcdctl(f"member promote {member_id}"),
                     f"learner {name} did not catch up with the leader to be promoted")
    yield _wait_healthy(etcd, me)
    yield _write_applied(applied)


def _move_data_aside(etcd, leftovers=False):
    """etcd stopped, its data kept beside the data dir (never deleted) for an operator to read.

    `leftovers`: only if there is any. A unit failing at every start (wiped data dir) is
    restarted by systemd while the membership changes: once this member is removed, a start with
    the old environment bootstraps a data dir of its own, which the learner would then start from
    and never catch up."""
    yield f"systemctl stop {SERVICE}"
    data_dir = shlex.quote(etcd.data_dir)
    move = f"mv {data_dir}/member {data_dir}/member.removed-$(date +%Y%m%dT%H%M%S)"
    yield f"if [ -e {data_dir}/member ]; then {move}; fi" if leftovers else move


def _client_urls(etcd, members, me):
    """Client URLs of the started members (what the cluster says, else what the file says)."""
    urls = []
    for member in members:
        if member["is_learner"]:
            continue
        if member["client_urls"]:
            urls += member["client_urls"]
        else:
            known = next((m for m in etcd.members if any(m.peer_url == u for u in member["peer_urls"])), None)
            if known and known.name != me.name:
                urls.append(known.client_url)
    return list(dict.fromkeys(urls))


def _name_and_peer_url(etcd, entry):
    """A member as the cluster reports it, for --initial-cluster (etcd matches by peer URL)."""
    url = entry["peer_urls"][0] if entry["peer_urls"] else ""
    known = next((m.name for m in etcd.members if m.peer_url == url), None)
    return entry["name"] or known or entry["id"], url


@operation()
def restart_changed(etcd, member, applied):
    """Restart a member whose unit or certificates changed since it started (run with _serial=True).

    Quorum-safe: only while the other voting members that are healthy keep a quorum without
    this one; then waits until it is healthy again, so the next member's restart starts from a
    whole cluster. A restart that would break the quorum is put off (reported); the next run
    does it, since the fingerprint on the host still differs.
    """
    me = etcd.member(member)
    name = me.name
    if not _active():
        host.noop(f"etcd is not running on {name}: it starts with the new files")
        return
    current = (_file_lines(paths.ETCD_APPLIED_FILE) or [""])[0]
    if current == applied:
        host.noop(f"{name} runs with its current unit and certificates")
        return
    members = _members(etcd)
    if members is None:
        yield from _refuse(f"{name} needs a restart for a changed unit or certificate, but no member "
                           "answers with a quorum: not restarting")
        return
    voting = _voting(members)
    others = [m for m in voting if me.peer_url not in m["peer_urls"]]
    healthy = [url for url, ok in _health(etcd, _client_urls(etcd, others, me)).items() if ok]
    needed = len(voting) // 2 + 1
    if len(healthy) < needed:
        _warn(f"restart of {name} put off: only {len(healthy)} other members are healthy and "
              f"{len(voting)} voting members need {needed}")
        host.noop(f"restart of {name} put off to keep the quorum")
        return
    yield f"systemctl restart {SERVICE}"
    yield _wait_healthy(etcd, me)
    yield _write_applied(applied)


@operation()
def owned(paths, user, group):
    """Give existing files to `user`:`group` (the files are written by config_file first)."""
    wrong = []
    for path in paths:
        info = host.get_fact(File, path=path)
        if info and (info["user"], info["group"]) == (user, group):
            continue
        wrong.append(path)
    if not wrong:
        host.noop(f"{len(paths)} files are owned by {user}:{group}")
        return
    yield f"chown {shlex.quote(user)}:{shlex.quote(group)} {' '.join(shlex.quote(p) for p in wrong)}"
