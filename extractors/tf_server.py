"""A TensorFlow model served from its own process, so TensorFlow's native libraries never share a
process with torch, triton or openSMILE (in one process they crash it).

Protocol on stdin/stdout, little-endian: request = int64 n + n float32 samples; response = int64 rows,
int64 cols + rows x cols float32. The server answers ``ready`` on stdout once the model is loaded.
Run by extractors/trill.py as ``python -m extractors.tf_server MODEL_DIR LAYER SEGMENT_SAMPLES``; a
SEGMENT_SAMPLES of 0 passes each request whole (one vector per clip).
"""

from __future__ import annotations

import struct
import sys

import numpy as np


def serve(model_dir: str, layer: str, step: int) -> None:
    import tensorflow as tf
    import tensorflow_hub as hub

    module = hub.load(model_dir)
    out, inp = sys.stdout.buffer, sys.stdin.buffer
    out.write(b"ready\n")
    out.flush()
    while True:
        head = inp.read(8)
        if len(head) < 8:
            return
        (n,) = struct.unpack("<q", head)
        x = np.frombuffer(inp.read(4 * n), dtype="<f4")
        vecs, size = [], step if step > 0 else max(1, n)
        for s in range(0, max(1, n), size):
            emb = module(samples=tf.constant(x[s : s + size], dtype=tf.float32), sample_rate=16000)[layer].numpy()
            vecs.append(emb.reshape(-1, emb.shape[-1]).mean(axis=0))
        arr = np.ascontiguousarray(np.stack(vecs), dtype="<f4")
        out.write(struct.pack("<qq", *arr.shape) + arr.tobytes())
        out.flush()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
