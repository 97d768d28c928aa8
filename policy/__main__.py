"""The policy pack's entry point: `pulumi preview --policy-pack policy`.

Constructing `PolicyPack` starts the analyzer's gRPC server and never returns, so nothing may
import this module; tests import `policy.policies` instead."""

import sys
from pathlib import Path

# The engine runs this file with the pack's folder on sys.path; the rules also read the
# project's Jetstream2 catalog, one folder up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.policies import PACK_NAME, POLICIES

PolicyPack(
    PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=list(POLICIES),
    description="JupyterHub on Jetstream2: security groups, data volumes, secrets, Z2JH and instance rules.",
)
