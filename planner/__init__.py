"""The offline planner: runs the real `__main__.py` under Pulumi mocks and reports the plan."""
