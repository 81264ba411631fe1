"""The agents: thin Faust shells around the core's dispatch (``motwatch.agents``)."""
