"""The blind judging test: people who know the target see a real conversation and two replies to it, the target's
real one and the clone's, in random order, and pick which one the target wrote (or "can't tell").

    pairs    the judging items, built from a finished evaluate_clone run (prepare_judging makes the judging run dir)
    votes    the votes, in SQLite: several judges at once, each vote its own short transaction
    report   the clone-picked rate with its 95 % interval, per judge and overall (judge_report.py prints it)
    access   who may judge: loopback, a judge's personal link (token) or the server's API key
    router   the page (/judge) and its JSON API, mounted into a FastAPI app with mount_judging

A judging run dir (`outputs/judging/<stamp>/`) holds items.jsonl, secret (the links' key), votes.sqlite and
manifest.json, written last when the dir is prepared. It is a live database: votes.sqlite (with its -wal and -shm
files while the server runs) is the one file that grows after the manifest; the report reads it at any time.
"""
