#!/usr/bin/env python3
"""A federation client written from proto/atomlens/v1/atomlens.proto alone (no TypeScript).

It generates the message classes at run time with `protoc --python_out` and calls the RPCs
through grpc's generic stubs, so no gRPC code generator plugin is needed. What it does:

  1. Register one task; read the template (per-layer alpha, the initial atoms) and check the
     alpha fingerprint against the canonical layout the proto documents.
  2. Download the operator's probe set with the streamed FetchProbeSet and verify its SHA-256
     against the template's probe.sha256.
  3. Push a few rounds of atoms: the initial atoms plus a small deterministic change
     (element e of a layer's atoms in round r gets + r * ((e mod 3) - 1) / 1024).
  4. Open the Session, heartbeat, and answer every probe request with PushProbeSummary: per
     requested layer the Gram matrix K = X X^T of stand-in features X of the probe inputs.
     The features are a deterministic function of the inputs (not a trained network): the point
     is taking part in the protocol.

Prints one JSON object per line on stdout for each step. Needs Debian's python3-grpcio,
python3-protobuf and protobuf-compiler (protoc).
"""

import argparse
import hashlib
import importlib
import json
import math
import os
import queue
import secrets
import struct
import subprocess
import sys
import tempfile
import threading
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
CHUNK_BYTES = 1 << 20


def load_messages():
    """Compile atomlens.proto into a temporary directory and import the generated module."""
    out = tempfile.mkdtemp(prefix="atomlens-py-")
    subprocess.run(
        ["protoc", f"-I{PROTO_ROOT}", f"--python_out={out}", "atomlens/v1/atomlens.proto"],
        check=True,
    )
    sys.path.insert(0, out)
    return importlib.import_module("atomlens.v1.atomlens_pb2")


def emit(event, **fields):
    print(json.dumps({"type": event, **fields}), flush=True)


def f32_decode(data):
    return list(struct.unpack(f"<{len(data) // 4}f", data))


def f32_encode(values):
    return struct.pack(f"<{len(values)}f", *values)


def alpha_fingerprint(template):
    """SHA-256 of alpha in the canonical layout (ModelTemplate.alpha_fingerprint)."""
    h = hashlib.sha256(b"atomlens-alpha-v1")
    h.update(struct.pack("<I", len(template.layers)))
    for layer, alpha in zip(template.layers, template.alpha):
        h.update(struct.pack("<III", layer.c_out, layer.c_in, layer.m))
        h.update(alpha.data)
    return h.hexdigest()


class Federation:
    """FederationService through generic stubs: method path plus (de)serialisers."""

    def __init__(self, pb, channel):
        self.pb = pb
        prefix = "/atomlens.v1.FederationService/"
        self.register = channel.unary_unary(
            prefix + "Register",
            request_serializer=pb.RegisterRequest.SerializeToString,
            response_deserializer=pb.RegisterResponse.FromString,
        )
        self.push_atoms = channel.unary_unary(
            prefix + "PushAtoms",
            request_serializer=pb.PushAtomsRequest.SerializeToString,
            response_deserializer=pb.PushAtomsResponse.FromString,
        )
        self.fetch_probe_set = channel.unary_stream(
            prefix + "FetchProbeSet",
            request_serializer=pb.FetchProbeSetRequest.SerializeToString,
            response_deserializer=pb.FetchProbeSetResponse.FromString,
        )
        self.session = channel.stream_stream(
            prefix + "Session",
            request_serializer=pb.SessionRequest.SerializeToString,
            response_deserializer=pb.SessionResponse.FromString,
        )
        self.push_probe_summary = channel.stream_unary(
            prefix + "PushProbeSummary",
            request_serializer=pb.PushProbeSummaryRequest.SerializeToString,
            response_deserializer=pb.PushProbeSummaryResponse.FromString,
        )


def fetch_probe_set(fed, client_id, probe, metadata):
    """Streamed download; the concatenated chunks must hash to the template's probe.sha256."""
    parts = []
    total = None
    for chunk in fed.fetch_probe_set(
        fed.pb.FetchProbeSetRequest(client_id=client_id, sha256=probe.sha256, offset=0),
        metadata=metadata,
    ):
        if chunk.offset != sum(len(p) for p in parts):
            raise RuntimeError(f"probe set chunk at offset {chunk.offset} out of order")
        parts.append(chunk.data)
        total = chunk.total_bytes
    data = b"".join(parts)
    digest = hashlib.sha256(data).hexdigest()
    expected_bytes = 4 * math.prod(probe.shape)
    if digest != probe.sha256 or len(data) != expected_bytes or len(data) != total:
        raise RuntimeError(
            f"probe set has SHA-256 {digest} and {len(data)} bytes, but the template says "
            f"{probe.sha256} and {expected_bytes} bytes"
        )
    return f32_decode(data)


def round_atoms(initial, round_number):
    """The initial atoms plus r * ((e mod 3) - 1) / 1024 at element e, rounded to float32."""
    return [v + round_number * ((e % 3) - 1) / 1024 for e, v in enumerate(initial)]


def layer_features(inputs, n, layer_index, dim=6):
    """Stand-in features of each probe input for one layer: X[i][j] = tanh of a weighted sum of
    the input's values with weights cos((j + 1) * (p + 1) * (layer_index + 1) * 0.01)."""
    per = len(inputs) // n
    rows = []
    for i in range(n):
        x = inputs[i * per:(i + 1) * per]
        row = []
        for j in range(dim):
            w = (j + 1) * (layer_index + 1) * 0.01
            s = sum(v * math.cos(w * (p + 1)) for p, v in enumerate(x))
            row.append(math.tanh(s / per * 4))
        rows.append(row)
    return rows


def gram(rows):
    n = len(rows)
    return [sum(a * b for a, b in zip(rows[i], rows[j])) for i in range(n) for j in range(n)]


def answer_probe(fed, client_id, request, template, inputs, latest_round, metadata):
    pb = fed.pb
    n = request.probe.size
    per = math.prod(template.probe.shape[1:])
    if n * per > len(inputs):
        raise RuntimeError(f"{n} probe inputs asked for, the operator's probe set has {len(inputs) // per}")
    used = inputs[: n * per]  # the first n rows (ProbeRequest.probe)
    names = [layer.name for layer in template.layers]
    round_number = request.round or latest_round[request.task_id]

    def chunks():
        for layer in request.layers:
            rows = layer_features(used, n, names.index(layer))
            data = f32_encode(gram(rows))
            for offset in range(0, len(data), CHUNK_BYTES):
                yield pb.PushProbeSummaryRequest(
                    request_id=request.request_id,
                    client_id=client_id,
                    task_id=request.task_id,
                    round=round_number,
                    layer=layer,
                    n=n,
                    feature_dim=len(rows[0]),
                    offset=offset,
                    data=data[offset:offset + CHUNK_BYTES],
                )

    return fed.push_probe_summary(chunks(), metadata=metadata)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True, help="coordinator host:port (plaintext gRPC)")
    ap.add_argument("--id", default="py-client", help="client id")
    ap.add_argument("--task", default="py-0-1", help="task id")
    ap.add_argument("--classes", default="0,1", help="the task's class labels, comma-separated")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of atoms to push")
    ap.add_argument("--probes", type=int, default=1, help="exit after answering this many probe requests (0 = never)")
    ap.add_argument("--linger", type=float, default=120, help="seconds to stay in the session at most")
    ap.add_argument("--enrollment-secret", default="", help="the federation's enrolment secret, when it has one")
    args = ap.parse_args()

    pb = load_messages()
    channel = grpc.insecure_channel(
        args.server, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]
    )
    fed = Federation(pb, channel)

    reg = fed.register(
        pb.RegisterRequest(
            client_id=args.id,
            tasks=[pb.TaskSpec(task_id=args.task, classes=[int(c) for c in args.classes.split(",")])],
            client_version="atomlens-python-example/1",
            enrollment_secret=args.enrollment_secret,
            client_credential=secrets.token_bytes(32) if args.enrollment_secret else b"",
        )
    )
    metadata = [("authorization", f"Bearer {reg.token}")] if reg.token else []
    template = reg.template
    if alpha_fingerprint(template) != template.alpha_fingerprint:
        raise RuntimeError("alpha does not match the template's alpha_fingerprint")
    if len(template.initial_atoms) != len(template.layers):
        raise RuntimeError("the template carries no initial atoms (a seed-generated template)")
    initial = {layer.name: f32_decode(t.data) for layer, t in zip(template.layers, template.initial_atoms)}
    emit(
        "registered",
        federation=template.federation_id,
        layers=[layer.name for layer in template.layers],
        alpha_fingerprint=template.alpha_fingerprint,
        probe_layers=list(template.probe_layers),
    )

    if template.probe.source != pb.PROBE_SOURCE_OPERATOR:
        raise RuntimeError("this example needs an operator probe set (atomlens coordinator --probe-set)")
    inputs = fetch_probe_set(fed, args.id, template.probe, metadata)
    emit("probe_set", sha256=template.probe.sha256, shape=list(template.probe.shape), verified=True)

    last = {p.task_id: p.last_round for p in reg.progress}
    latest_round = {args.task: last.get(args.task, 0)}
    for _ in range(args.rounds):
        r = latest_round[args.task] + 1
        layers = [
            pb.LayerAtoms(
                layer=layer.name,
                atoms=pb.Tensor(shape=[layer.m, layer.k, layer.k], data=f32_encode(round_atoms(initial[layer.name], r))),
            )
            for layer in template.layers
        ]
        ack = fed.push_atoms(
            pb.PushAtomsRequest(client_id=args.id, task_id=args.task, round=r, layers=layers),
            metadata=metadata,
        )
        latest_round[args.task] = r
        emit("pushed", task=args.task, round=ack.round, duplicate=ack.duplicate, drift=ack.drift)

    outgoing = queue.Queue()
    stop = threading.Event()
    heartbeat_s = (reg.heartbeat_interval_ms or 5000) / 1000

    def requests():
        yield pb.SessionRequest(hello=pb.SessionHello(client_id=args.id))
        while not stop.is_set():
            try:
                yield outgoing.get(timeout=heartbeat_s)
            except queue.Empty:
                yield pb.SessionRequest(heartbeat=pb.Heartbeat(sent_at_ms=int(time.time() * 1000)))

    call = fed.session(requests(), metadata=metadata)
    timer = threading.Timer(args.linger, call.cancel)
    timer.start()
    answered = set()
    try:
        for msg in call:
            kind = msg.WhichOneof("kind")
            if kind == "welcome":
                emit("session", heartbeat_interval_ms=msg.welcome.heartbeat_interval_ms)
            elif kind == "probe_request":
                req = msg.probe_request
                if req.request_id in answered:
                    continue
                try:
                    res = answer_probe(fed, args.id, req, template, inputs, latest_round, metadata)
                except Exception as err:  # noqa: BLE001 -- told to the coordinator, not raised
                    outgoing.put(pb.SessionRequest(probe_failure=pb.ProbeFailure(request_id=req.request_id, message=str(err))))
                    emit("probe_failed", request_id=req.request_id, message=str(err))
                    continue
                answered.add(req.request_id)
                emit("probe_answered", request_id=req.request_id, layers=list(res.layers), n=req.probe.size)
                if args.probes and len(answered) >= args.probes:
                    break
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.CANCELLED:
            raise
    finally:
        stop.set()
        timer.cancel()
        call.cancel()
        channel.close()
    emit("done", answered=len(answered))


if __name__ == "__main__":
    main()
