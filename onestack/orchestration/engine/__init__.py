"""The orchestration engine: runs stack actions in the controller (``runtime.start``).

- ``runtime``     the Engine served on the bus (topic ``orchestration.engine``), threads, recovery
- ``actions``     create / update / delete / rollback / suspend / resume / check as graph walks
- ``stack``       a stack's template, environment and parameters loaded, and the Resolver
- ``properties``  property validation against a type's schema, and the update diff
- ``context``     ``EngineContext``: the resources' ``Context`` (``client(service_type)``,
                  ``signal_url(name)``) -- what OS::Nova/Neutron/... types act through
- ``credentials`` trusts, and the one function choosing whose token acts (``owner_token``)
- ``store``       the engine's row reads and writes
"""
