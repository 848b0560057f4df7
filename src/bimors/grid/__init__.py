"""A grid of runs: protocol x datasets x methods x seeds x sweep points, shards and locks.

``runner`` resolves each cell's config and executes its plan once (a lock per
run folder lets shards share a runs folder); ``sweep`` parses ``--sweep
KEY=V1,V2`` axes and names their run folders.
"""
