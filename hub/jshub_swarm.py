"""The swarm hub's pre-spawn hook: each user's home, UID and quota made on the manager by a
one-shot container of the hub's image, and the shared course folder's mounts. The settings
(renderers/hub_settings.py) call `prepare_home` with the swarm's paths and limits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import docker

# Run in a one-shot container on the manager (the volume bound at the same path) before each
# spawn: `sh -c SCRIPT sh ADMIN_GID SHARED HOME_LINK TARGET UID GID`. The folder is root's, the
# admins' group's, setgid; a user's home gets a `shared` link to where notebooks mount it,
# unless the user has something of that name already.
SHARED_SETUP = """\
set -eu
install -d -m 2775 -o 0 -g "$1" "$2"
if [ ! -e "$3" ] && [ ! -L "$3" ]; then
    ln -s "$4" "$3"
    chown -h "$5:$6" "$3"
fi
"""

ONE_SHOT_LABELS = {"jshub.role": "user-home"}


def parse_home_output(output: str, gid: int) -> dict[str, str]:
    """The home script's last line, `home=PATH uid=N gid=N`."""
    fields = dict(part.split("=", 1) for part in output.strip().splitlines()[-1].split())
    if not (fields.get("uid", "").isdigit() and fields.get("gid") == str(gid)):
        raise RuntimeError(f"the home script answered {output!r}")
    return fields


def prepare_home(
    *,
    hub_image: str,
    home_command: str,
    export_root: str,
    home_quota_gb: int,
    quota_overrides: Mapping[str, int],
    enforce_quota: bool,
    notebook_gid: int,
    notebook_min_uid: int,
    home_stand_ins: Mapping[str, str] | None = None,
    shared: Mapping[str, Any] | None = None,
) -> Callable[[Any], Awaitable[None]]:
    """The pre-spawn hook. `shared` (the course folder on): `admin_gid`, `export_path` (on the
    manager), `node_path` (on every node) and `mount` (in notebooks)."""

    def run(argv: list[str], volumes: dict[str, dict[str, str]], **options: Any) -> bytes:
        docker_client = docker.from_env()
        try:
            output: bytes = docker_client.containers.run(
                hub_image,
                argv,
                entrypoint=[],
                network_mode="none",
                remove=True,
                volumes=volumes,
                labels=dict(ONE_SHOT_LABELS),
                **options,
            )
        finally:
            docker_client.close()
        return output

    export = {export_root: {"bind": export_root, "mode": "rw"}}

    def make_home(user: str) -> dict[str, str]:
        # The home, its owner UID and its XFS project quota are made on the manager by a
        # one-shot container (privileged to reach the volume's block device): the hub's own
        # service stays unprivileged, though it holds the Docker socket anyway.
        quota = quota_overrides.get(user, home_quota_gb)
        volumes = {
            **export,
            home_command: {"bind": home_command, "mode": "ro"},
            **{source: {"bind": target, "mode": "ro"} for source, target in (home_stand_ins or {}).items()},
        }
        output = run([home_command, user, str(quota)], volumes, privileged=enforce_quota)
        try:
            return parse_home_output(output.decode(), notebook_gid)
        except RuntimeError as exc:
            raise RuntimeError(f"for {user}: {exc}") from None

    def shared_folder(fields: dict[str, str]) -> None:
        assert shared is not None
        run(
            [
                "/bin/sh",
                "-c",
                SHARED_SETUP,
                "sh",
                str(shared["admin_gid"]),
                shared["export_path"],
                fields["home"] + "/shared",
                shared["mount"],
                fields["uid"],
                fields["gid"],
            ],
            export,
        )

    async def prepare(spawner: Any) -> None:
        fields = await asyncio.to_thread(make_home, spawner.user.name)
        # Never root, never a user of the image: the user's own UID only.
        if int(fields["uid"]) < notebook_min_uid:
            raise RuntimeError(f"refusing UID {fields['uid']} for {spawner.user.name}")
        container_spec = {**spawner.extra_container_spec, "user": f"{fields['uid']}:{fields['gid']}"}
        if shared is not None:
            await asyncio.to_thread(shared_folder, fields)
            # Set at every start from the hub's admin list now: a demoted admin's next server
            # reads only.
            admin = bool(spawner.user.admin)
            spawner.volumes = {
                **spawner.volumes,
                shared["node_path"]: {"bind": shared["mount"], "mode": "rw" if admin else "ro"},
            }
            container_spec.pop("groups", None)
            if admin:
                container_spec["groups"] = [str(shared["admin_gid"])]
        spawner.extra_container_spec = container_spec

    return prepare
