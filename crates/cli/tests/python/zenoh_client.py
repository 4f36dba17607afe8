"""A Python client of a running bicameral launch, using only PyPI's eclipse-zenoh and msgpack
(the example of PROTOCOL.md made into a test): reads joint states and action chunks, sends an
instruction, prints a JSON summary.

usage: zenoh_client.py ENDPOINT ROBOT SECONDS INSTRUCTION
"""
import json
import sys
import threading
import time

import msgpack
import numpy as np
import zenoh

endpoint, robot, seconds, instruction = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]

conf = zenoh.Config()
conf.insert_json5("mode", '"peer"')
conf.insert_json5("connect/endpoints", json.dumps([endpoint]))
conf.insert_json5("scouting/multicast/enabled", "false")
session = zenoh.open(conf)

lock = threading.Lock()
got = {"states": 0, "chunks": 0, "state_dim": None, "chunk_shape": None, "chunk_finite": True,
       "kinds": set()}


def on_state(sample):
    m = msgpack.unpackb(sample.payload.to_bytes())
    with lock:
        got["states"] += 1
        got["state_dim"] = len(m["position"])
        got["kinds"].add(m["header"]["kind"])


def on_chunk(sample):
    m = msgpack.unpackb(sample.payload.to_bytes())
    a = m["actions"]
    actions = np.frombuffer(a["data"], "<f4").reshape(a["shape"])
    with lock:
        got["chunks"] += 1
        got["chunk_shape"] = list(actions.shape)
        got["chunk_finite"] &= bool(np.isfinite(actions).all())
        got["kinds"].add(m["header"]["kind"])


subs = [
    session.declare_subscriber(f"bicameral/{robot}/obs/joint_state", on_state),
    session.declare_subscriber(f"bicameral/{robot}/s1/action_chunk", on_chunk),
]
msg = {
    "header": {"schema": 1, "kind": "instruction", "seq": 0, "stamp_ns": time.time_ns(),
               "robot": robot},
    "text": instruction,
}
deadline = time.time() + seconds
sent = False
while time.time() < deadline:
    time.sleep(0.1)
    with lock:
        ready = got["states"] > 0
    if ready and not sent:
        session.put(f"bicameral/{robot}/task/instruction", msgpack.packb(msg))
        sent = True
for s in subs:
    s.undeclare()
session.close()
with lock:
    got["kinds"] = sorted(got["kinds"])
    got["instruction_sent"] = sent
    print(json.dumps(got))
