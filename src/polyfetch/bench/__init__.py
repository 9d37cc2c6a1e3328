"""``polyfetch bench``: when does each concurrency model win, measured on this machine.

- `scenarios`: the workloads, each a series of points exposing one regime;
- `probe`: one measured run in a fresh interpreter (a backend, or a raw peer);
- `peers`: the raw libraries and other clients on the same URL lists;
- `work`: per-item work plugged in as a post-processor (a blocking SDK call);
- `run`: the server, fresh processes, interleaved rounds, medians;
- `report`, `plots`: verdicts computed from the data, report.md and PNGs;
- `command`: the subcommand itself.
"""
