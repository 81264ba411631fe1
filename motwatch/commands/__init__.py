"""The ``motwatch`` commands: one module per command, its argument parser beside what it runs.

Each module has ``add_parser(subparsers)``, which registers the command with
``run(args)`` as its function. Commands may import the core, the Kafka
package, the simulation, ``streams`` and the settings; never the agents.
"""
