"""`pipeline verify`: every committed entry is readable, finite and consistent with the index."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stores.feature_store import FeatureStore


def verify(store: FeatureStore) -> list[str]:
    """Problems found (empty list = the store is sound)."""
    problems: list[str] = []
    live = store.index()
    ok = live[live["status"] == "ok"]
    if live.duplicated(["clip_id", "stage", "view", "extractor"]).any():
        problems.append("index: an entry appears twice")
    for part, rows in ok.groupby("part"):
        problems += _check_part(store, str(part), rows)
    referenced = set(ok["part"])
    for part in store.part_dirs():
        if part not in referenced:
            problems.append(f"{part}: committed part that no index row references (removed by the next run)")
    return problems


def _check_part(store: FeatureStore, part: str, rows: pd.DataFrame) -> list[str]:
    try:
        values = store.array(f"{part}/values")
        times = store.array(f"{part}/times")
        mask = store.array(f"{part}/mask")
    except Exception as exc:  # noqa: BLE001 - any unreadable array is a problem to report
        return [f"{part}: unreadable ({type(exc).__name__}: {exc})"]
    out = []
    n = values.shape[0]
    if times.shape != (n, 2) or mask.shape != (n,):
        out.append(f"{part}: values/times/mask lengths differ ({n}, {times.shape}, {mask.shape})")
    data = values[:]
    t = times[:]
    for r in rows.itertuples(index=False):
        lo, hi = int(r.offset), int(r.offset) + int(r.length)
        where = f"{r.clip_id} [{r.stage}{'/' + r.view if r.view else ''} {r.extractor}]"
        if lo < 0 or hi > n:
            out.append(f"{where}: rows {lo}:{hi} outside the part's {n} rows")
            continue
        if int(r.dim) != values.shape[1]:
            out.append(f"{where}: index says dim {r.dim}, array has {values.shape[1]}")
        if not np.isfinite(data[lo:hi]).all():
            out.append(f"{where}: non-finite values")
        if hi > lo and (np.diff(t[lo:hi, 0]) < -1e-9).any():
            out.append(f"{where}: frame times go backwards")
    spans = sorted((int(o), int(o) + int(ln)) for o, ln in zip(rows["offset"], rows["length"]))
    for (_, a1), (b0, _) in zip(spans, spans[1:]):
        if b0 < a1:
            out.append(f"{part}: two clips share rows {b0}:{a1}")
    return out
