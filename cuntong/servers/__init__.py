"""The real servers the system runs as child processes: broker, telemetry store, database.

Each module has a pure ``config`` function (settings in, file text out) and a small
``start``/``stop`` handle, so the launcher, the benchmarks and the test fixtures share them.
"""
