"""Wrapper go.mod generation (no network)."""
import pytest

from artifacts import gomod, util

UPSTREAM = """module k8s.io/kubernetes

go 1.25.0

godebug default=go1.25

require (
	k8s.io/api v0.0.0
	github.com/x/y v1.2.3 // indirect
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	gopkg.in/natefinch/lumberjack.v2 => gopkg.in/natefinch/lumberjack.v2 v2.0.0 // pinned
)

replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""


def test_parse_gomod():
    m = gomod.parse_gomod(UPSTREAM)
    assert m["go"] == "1.25.0"
    assert m["godebug"] == ["default=go1.25"]
    assert [r["old"] for r in m["replace"]] == ["k8s.io/api", "gopkg.in/natefinch/lumberjack.v2", "go.etcd.io/etcd"]


def test_wrapper_maps_local_replaces_and_keeps_others():
    text = gomod.wrapper_gomod("k", [("k8s.io/kubernetes", "v1.35.8")], UPSTREAM,
                               {"k8s.io/api": ("k8s.io/api", "v0.35.8"), "go.etcd.io/etcd": None})
    assert "go 1.25.0" in text and "godebug default=go1.25" in text
    assert "\tk8s.io/kubernetes v1.35.8" in text
    assert "\tk8s.io/api => k8s.io/api v0.35.8" in text
    assert "\tgopkg.in/natefinch/lumberjack.v2 => gopkg.in/natefinch/lumberjack.v2 v2.0.0" in text
    assert "FORBIDDEN" not in text and "./staging" not in text


def test_unmapped_local_replace_is_an_error():
    with pytest.raises(util.Failed):
        gomod.wrapper_gomod("k", [("k8s.io/kubernetes", "v1.35.8")], UPSTREAM, {})


def test_go_env_never_falls_back_to_direct(monkeypatch):
    monkeypatch.setattr(util, "capture", lambda cmd, **kw: "https://proxy.example.invalid,direct\n")
    env = gomod.go_env()
    assert env["GOPROXY"] == "https://proxy.example.invalid"
    assert env["GOTOOLCHAIN"] == "local"
    monkeypatch.setattr(util, "capture", lambda cmd, **kw: "direct\n")
    with pytest.raises(util.Failed):
        gomod.go_env()
