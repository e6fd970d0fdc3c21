"""`pipeline status`: per extractor and stage, how many clips are done, failed or excluded."""

from __future__ import annotations

import pandas as pd

from stores.feature_store import FeatureStore


def summary(store: FeatureStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(counts per stage/view/extractor/status, the failures and exclusions table)."""
    live = store.index()
    if live.empty:
        return pd.DataFrame(columns=["stage", "view", "extractor", "ok", "failed", "excluded"]), live
    counts = (live.groupby(["stage", "view", "extractor", "status"]).size().unstack("status", fill_value=0)
              .reindex(columns=["ok", "failed", "excluded"], fill_value=0).reset_index())
    problems = live[live["status"] != "ok"][["clip_id", "stage", "view", "extractor", "status", "reason"]]
    return counts, problems.sort_values(["status", "clip_id", "extractor"]).reset_index(drop=True)
