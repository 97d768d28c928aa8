# jupyterhub_config.py of the VM and swarm hubs (jupyterhub-jetstream). The same file on every
# hub: what differs is data, in jupyterhub_settings.json beside it, which the stack writes
# (`pulumi up`; do not edit either on the hub). Secrets come from the hub's environment, named
# in the settings, never written in them. The hub's modules (jshub_*.py) sit beside this file.
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import jshub_settings  # noqa: E402 (installed beside this file)

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (JupyterHub provides get_config)
jshub_settings.apply_settings(
    c, jshub_settings.load_settings(os.path.join(_HERE, "jupyterhub_settings.json"))
)
