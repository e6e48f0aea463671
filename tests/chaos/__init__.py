"""Jepsen-style chaos tests: real replnode processes, client workloads, faults, checkers.

Layout (each module's docstring says what it owns):
    config.py      RunConfig: everything one run needs, fault and bug names, time budgets
    client.py      a client that follows the primary and sorts replies into ok/fail/unknown
    history.py     operation records, the thread-safe history, JSON lines on disk
    workloads.py   register (read/write/cas), set (w:majority inserts), w:1 inserts
    netfilter.py   an nft table of its own cutting links between 127.x.y.z addresses
    partitions.py  partition shapes as sets of cut links, and the two ways to cut them
    nemesis.py     the seeded fault schedule and its execution (kill, pause, partitions,
                   stepdown/freeze, membership changes, kill -9 of everyone)
    cluster.py     the processes of one run: addresses, config, membership, heal, quiesce
    monitor.py     status polling and member log parsing (primaries per term, elections)
    models.py      the document-register model for the linearizability checker
    checkers.py    the end-of-run checks, each returning findings
    runner.py      one run from seed to report; report.py: reports and soak summaries
"""
