"""Test support for the KKMP services: brokers, databases, fault injection and polling helpers.

Plain modules, imported explicitly by the tests that need them (this is not a pytest plugin):

- ``kkmp_testkit.rabbit``: ``ensure_broker``, per-test vhosts, and ``PrivateRabbit``, a
  RabbitMQ node of the test's own that can be killed, restarted and memory-alarmed.
- ``kkmp_testkit.postgres``: ``ensure_postgres`` and throw-away databases.
- ``kkmp_testkit.proxy``: ``ChaosProxy``, a TCP proxy with latency, resets, hangs, refusals.
- ``kkmp_testkit.ports``: ``free_port``.
- ``kkmp_testkit.wait``: ``eventually`` / ``wait_until`` polling with useful failures.

Other helpers in this package document themselves. Submodules are not imported here, so that
importing one (say ``wait``) never drags in aio-pika or asyncpg.
"""
