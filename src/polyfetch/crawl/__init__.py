"""``polyfetch crawl``: fetch a list of URLs from a file or stdin into JSON Lines or CSV records.

Theory of operation. `inputs` reads the list lazily, line by line, and hands
`Fetcher.map` one item per line that holds a URL (blank lines and ``#``
comments are skipped; duplicates are skipped by a bounded-memory fingerprint
set, `polyfetch.frontier.seen`). Every result becomes one record (`outputs`), written whole and
flushed before the next, so a killed run leaves only complete lines and
``--resume`` can pick up from the file. Bodies go to ``--save-dir`` under names
derived from a hash of the URL (`savedir`). The fetch loop runs in the main
thread; `signals` turns Ctrl+C into "stop reading, finish what is in flight
for a short grace period, then cancel", and a second Ctrl+C into an immediate
exit. `progress` draws a rich progress line on stderr and prints the summary.
`run` ties them together and decides the exit status.

`options` (argparse only) is the one module imported before the gevent patch;
everything else is imported by ``polyfetch.cli`` only once a crawl starts.
"""
