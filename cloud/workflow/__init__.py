"""Business workflows: the catalogue of remote-counter businesses and the step rules.

Pure: no database, no clock, no I/O beyond reading the catalogue file once at start-up.
"""
