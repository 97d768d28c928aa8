"""Security and data-safety rules for jupyterhub-jetstream, shared by the Pulumi policy pack
(`pulumi preview --policy-pack policy`) and the offline planner (`policy.rules.check_plan`).

Importing this package is cheap: `policy.rules` is pure Python; only `policy.policies` and
the pack's entry module import `pulumi_policy`."""
