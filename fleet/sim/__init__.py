"""Thousands of simulated terminals in one process, for rollout tests and fleet benchmarks.

A real agent per simulated terminal costs a spool database, a health sampler and a full
MQTT client; ten thousand of them do not fit on a small machine. ``fleet.sim.terminals``
keeps one real MQTT 5 connection per terminal (``fleet.sim.mqtt5`` is just enough of the
protocol) and answers commands from a behaviour function.
"""
