"""The master's pure policies: functions from facts (a view of the cluster, an event, ``now``)
to effects. No I/O, no clock, no SQLAlchemy, no asyncio: the master gathers the facts, calls a
policy, and applies the effects it answers (see ``corral/master/README.md``)."""
