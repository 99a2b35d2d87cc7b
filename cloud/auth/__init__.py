"""People and access: accounts, roles, login sessions, RBAC, masking, audit, rate limits."""
