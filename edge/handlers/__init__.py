"""Command handlers the agent registers into its ``handlers`` table, one module per concern."""
