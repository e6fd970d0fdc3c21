"""`pipeline status`: per extractor and stage, how many clips are done, failed or excluded, and how much
of what is done is valid (a face extractor that found no face is 'ok' but holds nothing)."""

from __future__ import annotations

import pandas as pd

from stores.feature_store import FeatureStore

COLUMNS = ["stage", "view", "extractor", "ok", "failed", "excluded", "valid", "low_valid"]


def summary(store: FeatureStore, min_valid: float = 0.5) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(counts per stage/view/extractor with the mean valid share of ok entries and how many fall below
    ``min_valid``, the failures and exclusions table, the native ok entries below ``min_valid``)."""
    live = store.index()
    if live.empty:
        return pd.DataFrame(columns=COLUMNS), live, live
    keys = ["stage", "view", "extractor"]
    counts = (live.groupby([*keys, "status"]).size().unstack("status", fill_value=0)
              .reindex(columns=["ok", "failed", "excluded"], fill_value=0))
    ok = live[live["status"] == "ok"]
    valid = pd.to_numeric(ok["valid"], errors="coerce")
    counts["valid"] = valid.groupby([ok[k] for k in keys]).mean()
    counts["low_valid"] = (valid < min_valid).groupby([ok[k] for k in keys]).sum()
    counts = counts.reset_index()
    counts["low_valid"] = counts["low_valid"].fillna(0).astype(int)
    problems = live[live["status"] != "ok"][["clip_id", "stage", "view", "extractor", "status", "reason"]]
    low = ok[(ok["stage"] == "native") & (valid < min_valid)][["clip_id", "extractor", "valid"]]
    return (counts[COLUMNS], problems.sort_values(["status", "clip_id", "extractor"]).reset_index(drop=True),
            low.sort_values(["extractor", "valid", "clip_id"]).reset_index(drop=True))
