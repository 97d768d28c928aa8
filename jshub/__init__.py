"""Operators' commands against a deployed hub, through its REST API as the stack's `jshub-admin`
service (the `url` and `admin_token` stack outputs): `python -m jshub.smoke` checks that the hub
works end to end, `python -m jshub.users` manages a workshop's roster."""
