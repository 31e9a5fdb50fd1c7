#!/usr/bin/env python3
"""make_corpus.py -- writes the seed corpus of every fuzz target into
tests/fuzz/corpus/<name>/, from the Caracal fixtures in tests/fixtures/caracal
and a few hand-made forms the decoders accept (see DESIGN.md section 2).

The seeds are committed; run this again only to change them. Entry seeds use
the input format of tests/fuzz/fuzz_support.h: a control byte (signing mode
+ 3 * selector), then NUL-separated entry id, name, value, name, value, ...
Standard library only (msgpack is written by hand: bin8/str8/fixmap/array).
"""
import hashlib
import hmac
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures", "caracal")
CORPUS = os.path.join(HERE, "corpus")
KEY = bytes.fromhex("0123456789abcdef" * 4)  # fuzz_key_hex
UNSIGNED, SIGNED, AS_GIVEN = 0, 1, 2


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def entry_input(control, entry_id, fields):
    pieces = [entry_id] + [p for kv in fields for p in kv]
    return bytes([control]) + b"\0".join(p.encode() if isinstance(p, str) else p
                                         for p in pieces)


def canonical(stream, fields):
    body = "".join(f"{k}={v}\n" for k, v in sorted(fields) if k != "_sig")
    return f"{stream}\n{body}".encode()


def stream_sig(stream, fields):
    return hmac.new(KEY, canonical(stream, fields), hashlib.sha256).hexdigest()


# ---- msgpack, the few forms the readers need ------------------------------

def mp_bin(b):
    b = b.encode() if isinstance(b, str) else b
    return (b"\xc4" + bytes([len(b)]) if len(b) < 256 else
            b"\xc5" + struct.pack(">H", len(b))) + b


def mp_str(s):
    s = s.encode()
    return bytes([0xa0 | len(s)]) + s if len(s) < 32 else b"\xd9" + bytes([len(s)]) + s


def mp_int(v):
    return bytes([v]) if 0 <= v < 128 else b"\xd3" + struct.pack(">q", v)


def mp_map(pairs):
    out = bytes([0x80 | len(pairs)])
    for k, v in pairs:
        out += mp_str(k) + v
    return out


def mp_array(items):
    n = len(items)
    return (bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)) + b"".join(items)


def packed_entry(stream, entry_id, fields):
    flat = [mp_bin(p) for kv in fields for p in kv]
    return mp_array([mp_bin(stream), mp_bin(entry_id), mp_array(flat)])


# ---- the events ------------------------------------------------------------

AUDIT_FIXTURE = json.dumps(json.loads(fixture("audit-event.allow.valid.json")),
                           separators=(",", ":"))
TOKEN_EXCHANGE = json.dumps({
    "id": "evt-2", "zone_id": "zone-1", "event_type": "token_exchange",
    "request_id": "req-2", "decision": "allow", "evaluation_status": "complete",
    "determining_policies_json": None, "diagnostics_json": [],
    "occurred_at": "2026-05-21T14:00:00.123456789+02:00",
    "metadata_json": {
        "application_id": "app-1", "resource": "resource://api",
        "session_id": "ar-1", "agent_session_id": "as-1",
        "delegation_edge_id": "edge-1", "subject_kind": "agent",
        "delegation_graph_epoch": 7,
        "delegation_chain": [{"application_id": "app-0", "agent_session_id": "as-0",
                              "delegation_edge_id": "edge-0"}],
    },
}, separators=(",", ":"))
GATEWAY = json.dumps({
    "id": "evt-3", "zone_id": "zone-1", "event_type": "gateway_resource_request",
    "request_id": "req-2", "decision": "allow", "evaluation_status": "executed",
    "occurred_at": "2026-05-21T12:00:00.500Z",
    "metadata_json": {"application_id": "app-1", "resource": "resource://api",
                      "method": "GET", "gateway_status": 200, "upstream_status": "200",
                      "result_class": "success", "latency_ms": 12, "response_bytes": 512,
                      "trace_id": "t-1", "revocation_interrupted": False},
}, separators=(",", ":"))

SESSION_REVOKE = [(k, v) for k, v in json.loads(
    fixture("revocation-event.session.valid.json")).items() if k != "_sig"]
SUSPEND_REVOKE = [("zone_id", "zone-1"), ("session_id", "ar-1"), ("agent_session_id", "as-1"),
                  ("reason", "suspended"), ("dedupe_key", "agent_suspend:as-1:1716300000000")]
EDGE_ONLY = [("zone_id", "zone-1"), ("delegation_edge_id", "edge-1"), ("outbox_id", "ob-9")]
LIFECYCLE = [("event", "suspend"), ("zone_id", "zone-1"), ("agent_session_id", "as-1"),
             ("parent_id", "null"), ("reason", "operator")]
RESUME = [("event", "resume"), ("zone_id", "zone-1"), ("agent_session_id", "as-1"),
          ("parent_id", "as-0"), ("reason", "operator")]
EDGE_REVOKE_JSON = [("event", "edge_revoke"), ("zone_id", "zone-1"), ("edge_id", "edge-1"),
                    ("epoch", "8"), ("affected_edges", '["edge-2","edge-3"]')]
EDGE_REVOKE_LIST = [("event", "edge_revoke"), ("zone_id", "zone-1"), ("edge_id", "edge-1"),
                    ("epoch", "9"), ("affected_edges", "edge-2, edge-3,edge-4")]
CALL_FIELDS = [("request_id", "req-2"), ("status", "200"),
               ("occurred_at", "2026-05-21T12:00:00.400Z"), ("zone_id", "zone-1"),
               ("resource", "resource://api"), ("source", "nginx")]

STREAMS = {0: "caracal.sessions.revoke", 1: "caracal.agents.lifecycle",
           2: "caracal.delegations.invalidate"}
ID = "1716300000000-0"


def main():
    # JSON checker: the fixtures as they are, and forms a reader must get right.
    write("json", "audit-fixture", fixture("audit-event.allow.valid.json"))
    write("json", "revocation-fixture", fixture("revocation-event.session.valid.json"))
    write("json", "sig-vectors", fixture("stream-sig-canonicalize.vectors.json"))
    write("json", "token-exchange", TOKEN_EXCHANGE.encode())
    write("json", "escapes", '{"a":"\\u0061\\ud83d\\ude00\\n\\/","b":"caf\u00e9"}'.encode())
    write("json", "escaped-duplicate", b'{"a":1,"\\u0061":2}')
    write("json", "numbers", b'[0,-1.5e+10,2E-3,true,false,null,{},[]]')

    # Audit decoding: unsigned, harness-signed, and signed as given.
    for name, data in [("fixture", AUDIT_FIXTURE), ("token-exchange", TOKEN_EXCHANGE),
                       ("gateway", GATEWAY)]:
        write("audit", f"{name}-unsigned", entry_input(UNSIGNED, ID, [("id", "req-x"), ("data", data)]))
        write("audit", f"{name}-signed", entry_input(SIGNED, ID, [("data", data)]))
    sig = hmac.new(KEY, TOKEN_EXCHANGE.encode(), hashlib.sha256).hexdigest()
    write("audit", "outbox-as-given", entry_input(AS_GIVEN, ID, [
        ("id", "evt-2"), ("data", TOKEN_EXCHANGE), ("sig", sig), ("outbox_id", "ob-1"),
        ("_sig", "00" * 32)]))

    # Revocations: every stream, with the control byte's selector picking it.
    for role, name, fields in [(0, "session-fixture", SESSION_REVOKE), (0, "suspend-revoke", SUSPEND_REVOKE),
                               (0, "edge-only", EDGE_ONLY), (1, "suspend", LIFECYCLE), (1, "resume", RESUME),
                               (2, "edge-revoke-json", EDGE_REVOKE_JSON),
                               (2, "edge-revoke-list", EDGE_REVOKE_LIST)]:
        write("revocation", f"{name}-unsigned", entry_input(3 * role + UNSIGNED, ID, fields))
        write("revocation", f"{name}-signed", entry_input(3 * role + SIGNED, ID, fields))
        given = fields + [("_sig", stream_sig(STREAMS[role], fields))]
        write("revocation", f"{name}-as-given", entry_input(3 * role + AS_GIVEN, ID, given))

    # Dead letters: the audit DLQ (selector 0), and a revocation's .dead
    # stream (selector 1) in the enforcer and the SDK shape.
    write("dead_letter", "audit-dlq", entry_input(UNSIGNED, ID, [
        ("reason", "max_deliveries"), ("src_id", "evt-2"), ("received_at", "1716300000123"),
        ("src_data", TOKEN_EXCHANGE), ("src_sig", "00" * 32)]))
    values = json.dumps(dict(SESSION_REVOKE), separators=(",", ":"))
    enforcer = [("original_id", "1716300000000-0"), ("error", "unknown session"), ("values", values)]
    write("dead_letter", "enforcer-signed", entry_input(3 + SIGNED, ID, enforcer))
    write("dead_letter", "enforcer-as-given", entry_input(3 + AS_GIVEN, ID, enforcer + [
        ("_sig", stream_sig("caracal.sessions.revoke.dead", enforcer))]))
    write("dead_letter", "sdk", entry_input(3 + UNSIGNED, ID, [
        ("source_id", "1716300000000-0"), ("reason", "handler failed"), ("payload", values)]))

    # Raw entries and bundles: packed entries as aw_raw_entry_pack writes them.
    entries = [
        packed_entry("caracal.audit.events", "1716300000000-0", [("data", AUDIT_FIXTURE)]),
        packed_entry("caracal.sessions.revoke", "1716300000001-0", SESSION_REVOKE),
        packed_entry("caracal.agents.lifecycle", "1716300000001-1", LIFECYCLE),
        packed_entry("caracal.delegations.invalidate", "1716300000002-0", EDGE_REVOKE_JSON),
    ]
    for i, e in enumerate(entries):
        write("raw_entry", f"entry-{i}", e)
    write("raw_entry", "binary-value", packed_entry("s", "1-1", [("k", b"\0\xff\n")]))
    write("raw_entry", "call", packed_entry("auditwatch.calls", ID, CALL_FIELDS))
    write("raw_entry", "nul-in-session", packed_entry("caracal.sessions.revoke", ID, [
        ("zone_id", "zone-1"), ("session_id", b"ar-1\0ar-2")]))
    body = b"".join(entries)
    write("bundle", "wrapped-body", bytes([2 * len(entries) + 1]) + body)
    header = mp_map([
        ("format", mp_str("auditwatch-bundle")), ("version", mp_int(1)),
        ("window", mp_map([("since_ms", mp_int(1716300000000)), ("until_ms", mp_int(1716300003000)),
                           ("since", mp_str("2024-05-21T14:00:00Z")),
                           ("until", mp_str("2024-05-21T14:00:03Z"))])),
        ("source", mp_str("/var/lib/auditwatch/index.db")),
        ("created_at", mp_str("2026-05-21T12:00:00Z")),
        ("counts", mp_map([("entries", mp_int(len(entries))), ("truncated", mp_int(0)),
                           ("streams", mp_map([("caracal.audit.events", mp_int(1))]))])),
        ("body_bytes", mp_int(len(body))),
        ("body_sha256", mp_str(hashlib.sha256(body).hexdigest())),
    ])
    write("bundle", "whole-file", b"\0" + header + body)

    # Times: every form the parsers accept.
    for i, t in enumerate(["2026-05-21T14:00:00.123456789+02:00", "2026-05-21T12:00:00.123Z",
                           "2024-02-29t23:59:59z", "1677-09-21T00:12:43.145224192Z",
                           "2262-04-11T23:47:16.854775807Z", "now", "-15m", "-7d", "-30s", "+1h", "-1.5d"]):
        write("time", f"time-{i}", t.encode())

    # Calls: NDJSON lines (default and mapped names) and flat entries.
    lines = [b'{"request_id":"req-2","status":200,"occurred_at":"2026-05-21T12:00:00.400Z",'
             b'"zone_id":"zone-1","resource":"/v1/x","source":"nginx"}',
             b'{"request_id":"req-3","status":"499","occurred_at":1716300000.123}',
             b'{"request_id":"req-4","status":502,"occurred_at":"1716300000.123456789"}']
    for i, line in enumerate(lines):
        write("call", f"line-{i}", b"\0" + line)
    write("call", "line-mapped", b"\x06" + b'{"rid":"req-5","code":"200","ts":"2026-05-21T12:00:00Z"}')
    write("call", "entry-unsigned", entry_input(3 + UNSIGNED, ID, CALL_FIELDS))
    write("call", "entry-signed", entry_input(3 + SIGNED, ID, CALL_FIELDS[:2]))


if __name__ == "__main__":
    main()
