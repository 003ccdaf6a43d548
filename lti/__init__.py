"""LTI 1.3 / LTI Advantage for any tool: registrations, keys, launches, roles, tokens, services.

This package knows platforms, deployments, users, contexts, resource links and roles; it knows
nothing of attendance. Views never touch claim URLs: they get a typed `Launch`.
"""
