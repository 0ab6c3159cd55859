"""The KKMP common library: what every service imports instead of writing again.

settings, database, error format, event envelope and contracts, outbox + relay, inbox consumer
runner, broker topology, auth, telemetry, logging and the service app factory.
"""
