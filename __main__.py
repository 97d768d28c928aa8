"""Entry point for `pulumi up` and for the offline planner: load config, pick the scenario."""

import pulumi

import stacks
from stackconfig import ConfigError, from_pulumi

try:
    config = from_pulumi()
    build = stacks.builder(config.scenario)
except (ConfigError, stacks.ScenarioNotImplementedError) as error:
    # Raised before any resource is registered; RunError prints without a traceback.
    raise pulumi.RunError(str(error)) from None

build(config)
