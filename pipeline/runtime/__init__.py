"""The Dask machinery: cluster sessions, dispatch, worker setup, progress display, stop signals."""
