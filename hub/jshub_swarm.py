"""The swarm hub's pre-spawn hook: each user's home, UID and quota made on the manager by a
one-shot container of the hub's image, the shared course folder's mounts, and the profile the
user picked on the spawn page (swarm.profiles: an image with its own limits). The settings
(renderers/hub_settings.py) call `prepare_home`, `profile_form` and `profile_options` with the
swarm's paths, limits and profiles."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import docker
from tornado import web

# What each profile carries (renderers/hub_settings.py resolves the swarm's defaults into it):
# slug, display_name, description, default, image, cpu_limit, mem_limit, cpu_guarantee,
# mem_guarantee (memory as JupyterHub's byte strings, e.g. "2048M").
Profile = Mapping[str, Any]
PROFILE_TRAITS = ("mem_limit", "cpu_limit", "mem_guarantee", "cpu_guarantee")


def default_profile(profiles: Sequence[Profile]) -> Profile:
    return next((p for p in profiles if p["default"]), profiles[0])


def profile_form(profiles: Sequence[Profile]) -> str:
    """The spawn page: one radio button a profile, with its limits spelled out."""
    preselected = default_profile(profiles)["slug"]
    rows = []
    for p in profiles:
        checked = " checked" if p["slug"] == preselected else ""
        limits = f"{p['cpu_limit']:g} CPU, {p['mem_limit']} memory, {p['image']}"
        description = f"<br><span>{html.escape(p['description'])}</span>" if p["description"] else ""
        rows.append(
            f'<div class="radio"><label><input type="radio" name="profile" '
            f'value="{html.escape(p["slug"])}"{checked}> <strong>{html.escape(p["display_name"])}</strong>'
            f"{description}<br><small>{html.escape(limits)}</small></label></div>"
        )
    return "<fieldset><legend>Choose an environment</legend>\n" + "\n".join(rows) + "\n</fieldset>"


def profile_options(profiles: Sequence[Profile]) -> Callable[[Mapping[str, list[str]]], dict[str, str]]:
    """`Spawner.options_from_form`: the form's choice as `{"profile": slug}`."""
    slugs = {p["slug"] for p in profiles}

    def options_from_form(formdata: Mapping[str, list[str]]) -> dict[str, str]:
        slug = (formdata.get("profile") or [default_profile(profiles)["slug"]])[0]
        if slug not in slugs:
            raise web.HTTPError(400, f"no profile {slug!r}; choose one of {', '.join(sorted(slugs))}")
        return {"profile": slug}

    return options_from_form


def apply_profile(spawner: Any, profiles: Sequence[Profile]) -> Profile:
    """Before a start: the chosen profile's image (through user_options, which the spawner
    checks against its allowed images) and its limits. An image asked for directly (the API's
    `{"image": ...}`) gives way to the profile's: with profiles, the profile decides."""
    slug = spawner.user_options.get("profile")
    if slug is None:
        profile = default_profile(profiles)
    else:
        found = [p for p in profiles if p["slug"] == slug]
        if not found:
            raise web.HTTPError(400, f"no profile {slug!r}")
        profile = found[0]
    spawner.user_options = {**spawner.user_options, "profile": profile["slug"], "image": profile["image"]}
    for trait in PROFILE_TRAITS:
        setattr(spawner, trait, profile[trait])
    return profile


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
    profiles: Sequence[Profile] = (),
) -> Callable[[Any], Awaitable[None]]:
    """The pre-spawn hook. `shared` (the course folder on): `admin_gid`, `export_path` (on the
    manager), `node_path` (on every node) and `mount` (in notebooks). `profiles`: the spawn
    page's choices, applied first (an unknown one makes no home)."""

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
        if profiles:
            apply_profile(spawner, profiles)
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
