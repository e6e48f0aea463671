"""One real replnode process, driven over HTTP as a user would with curl."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from replnode import codec
from tests.integration.harness import ProcessCluster, http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def standalone(tmp_path):
    c = ProcessCluster(base=tmp_path / "n", n=1, set_name="")
    c.start()
    yield c
    c.stop_all()


def raw_post(url, data: bytes, content_type="application/json"):
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, _decode(resp.headers["Content-Type"], resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _decode(exc.headers["Content-Type"], exc.read())


def _decode(ctype, raw):
    if ctype and ctype.startswith("application/msgpack"):
        return codec.unpack(raw)
    return json.loads(raw)


def count(c, i=0):
    reply = c.command(i, {"count": "c"}, db="test")
    if reply.get("ok") == 1:
        return reply["n"]
    return len(c.find_all(i))


def test_bad_requests_change_nothing_and_the_node_keeps_serving(standalone):
    c = standalone
    url = f"{c.members[0].url}/command/test"
    assert c.insert(0, [{"_id": 1}, {"_id": 2}])["n"] == 2
    cases = [
        (b'{"insert": "c", "documents": [{"_id": 3}', "application/json", 400, 9),
        (b"\xc1\xc1\xc1", "application/msgpack", 400, 9),
        (b'{"noSuchCommand": 1}', "application/json", 200, 59),
        (b"", "application/json", 400, 9),
        (b'[1, 2]', "application/json", 400, 9),
    ]
    for body, ctype, status, code in cases:
        got_status, reply = raw_post(url, body, ctype)
        assert got_status == status, (body, got_status, reply)
        assert reply["ok"] == 0 and reply["code"] == code, reply
        assert http(f"{c.members[0].url}/health")[0] == 200
        assert count(c) == 2
    big = b'{"insert": "c", "documents": [{"_id": 9, "x": "' + b"a" * 49_000_000 + b'"}]}'
    got_status, reply = raw_post(url, big)
    assert got_status == 413 and reply["code"] == 10334, reply
    assert http(f"{c.members[0].url}/health")[0] == 200
    assert count(c) == 2


def test_msgpack_round_trip(standalone):
    c = standalone
    url = f"{c.members[0].url}/command/test"
    body = codec.pack({"insert": "m", "documents": [{"_id": 1, "n": 5}]})
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/msgpack", "Accept": "application/msgpack"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("application/msgpack")
        assert codec.unpack(resp.read())["n"] == 1


def test_status_routes_and_metrics(standalone):
    c = standalone
    base = c.members[0].url
    assert http(f"{base}/hello")[1]["isWritablePrimary"] is True
    status, body = http(f"{base}/status")
    assert body["ok"] == 0 and body["code"] == 76  # standalone: NoReplicationEnabled
    status, body = http(f"{base}/nowhere")
    assert status == 404
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"replnode_member_state", "replnode_term", "replnode_oplog_used_bytes",
            "replnode_commands"} <= names


def test_shutdown_command_and_sigterm_exit_cleanly(tmp_path):
    c = ProcessCluster(base=tmp_path / "n", n=1, set_name="")
    try:
        c.start()
        reply = c.command(0, {"shutdown": 1})
        assert reply["ok"] == 1
        assert c.members[0].proc.wait(timeout=15) == 0
        c.start_member(c.members[0])
        assert c.terminate(0) == 0
    finally:
        c.stop_all()


def test_second_process_on_same_dbpath_refused(standalone):
    m = standalone.members[0]
    out = subprocess.run([sys.executable, "-m", "replnode", "--port", "0", "--dbpath",
                          str(m.dbpath), "--bind_ip", "127.0.0.1"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "in use" in out.stderr, out.stderr


@pytest.mark.parametrize("args, flag", [
    (["--port", "notaport"], "--port"),
    (["--oplogSize", "0"], "--oplogSize"),
    (["--bogus"], "--bogus"),
    (["--setParameter", "noSuchParam=1"], "noSuchParam"),
    (["--logFormat", "xml"], "--logFormat"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, args, flag):
    out = subprocess.run([sys.executable, "-m", "replnode", "--dbpath", str(tmp_path), *args],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 2
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and flag in lines[0], out.stderr


def test_yaml_config_and_multiple_bind_addresses(tmp_path):
    conf = tmp_path / "replnode.yaml"
    dbpath = tmp_path / "db"
    conf.write_text(f"net:\n  port: 0\n  bindIp: 127.0.0.1,127.0.0.2\nstorage:\n"
                    f"  dbPath: {dbpath}\nreplication:\n  replSetName: yrs\n"
                    f"systemLog:\n  path: {tmp_path / 'log'}\n")
    proc = subprocess.Popen([sys.executable, "-m", "replnode", "--config", str(conf)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("LISTENING 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        for host in ("127.0.0.1", "127.0.0.2"):
            assert http(f"http://{host}:{port}/health")[0] == 200
        hello = http(f"http://127.0.0.1:{port}/hello")[1]
        assert hello["isWritablePrimary"] is False and hello["isreplicaset"] is True
        for line in (tmp_path / "log").read_text().splitlines():
            doc = json.loads(line)
            assert {"t", "s", "c", "id", "msg", "attr"} <= set(doc), doc
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        proc.stdout.close()
        proc.stderr.close()


def test_ipv6_loopback(tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        pytest.skip("IPv6 loopback ::1 is not configured here")
    proc = subprocess.Popen([sys.executable, "-m", "replnode", "--port", "0", "--bind_ip", "::1",
                             "--dbpath", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        line = proc.stdout.readline().decode()
        port = int(line.rsplit(":", 1)[1])
        assert http(f"http://[::1]:{port}/health")[0] == 200
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
