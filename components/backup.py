"""BackupStore: where a hub's backups go and how its VM gets there. An object-storage container
(protected: deleting it deletes every backup) holding a restic repository, EC2 credentials for
its S3 API, the repository's password, and a remote command that installs restic, the backup,
check and restore commands with their timers, and a root-only file with those credentials."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_openstack as openstack
import pulumi_random as random

from renderers.backup import BackupSpec, render_env_file, render_install_script, repository


def container_name(allocation: str, stack: str) -> str:
    """A bucket name for the stack. Jetstream2's bucket names are global, so it carries the
    allocation and the stack; S3 allows 3-63 lowercase letters, digits and hyphens."""
    raw = re.sub(r"[^a-z0-9]+", "-", f"jshub-backup-{allocation}-{stack}".lower()).strip("-")
    return raw[:63].rstrip("-")


@dataclass(frozen=True)
class BackupStoreArgs:
    container_name: str
    # What the VM runs (paths, schedule, retention, maximum age), in plain values; with
    # host_connection only.
    spec: BackupSpec | None = None
    # The VM that holds the homes, as the stack's remote commands reach it, and what identifies
    # its root disk (the instance ID and the image: a replaced or rebuilt server has lost restic,
    # the scripts and the credentials, and needs them again). None on k8s, where a CronJob in
    # the cluster backs up (components.k8s_backup) with this store's credentials.
    host_connection: command.remote.ConnectionArgs | None = None
    host_root_disk: Sequence[pulumi.Input[str]] = ()


class BackupStore(pulumi.ComponentResource):
    container_name: pulumi.Output[str]
    repository: pulumi.Output[str]
    # Needed to read the backups without the VM (disaster recovery): secret.
    restic_password: pulumi.Output[str]
    # The S3 credentials (EC2 credentials of the project): the access key is an identifier, the
    # secret key is secret.
    s3_access_key: pulumi.Output[str]
    s3_secret_key: pulumi.Output[str]

    def __init__(self, name: str, args: BackupStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jshub:index:BackupStore", name, None, opts)

        container = openstack.objectstorage.Container(
            f"{name}-container",
            name=args.container_name,
            # Never empty a container to delete it: that would delete the backups.
            force_destroy=False,
            # The backups must outlive the hub they protect: `pulumi destroy` leaves them.
            opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True),
        )
        # The SDK already marks `secret` secret; saying so here keeps it so if that changes.
        credentials = openstack.identity.Ec2CredentialV3(
            f"{name}-s3-credentials",
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secret"]),
        )
        # restic's password encrypts the repository. Letters and digits only, so that the
        # environment file needs no quoting. Kept like the container: without it the retained
        # backups cannot be read, and a later stack adopting the container could not write.
        password = random.RandomPassword(
            f"{name}-restic-password",
            length=48,
            special=False,
            opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True),
        )

        repo = container.name.apply(repository)
        env_file: pulumi.Output[str] = pulumi.Output.all(
            repo, credentials.access, credentials.secret, password.result
        ).apply(lambda values: render_env_file(values[0], values[1], values[2], values[3]))
        if args.host_connection is not None:
            if args.spec is None:
                raise ValueError("BackupStore installs on a VM only with a BackupSpec")
            command.remote.Command(
                f"{name}-install",
                connection=args.host_connection,
                create=render_install_script(args.spec),
                stdin=pulumi.Output.secret(env_file),  # type: ignore[arg-type]
                logging=command.remote.Logging.NONE,
                # A new server needs everything again. The script waits for cloud-init itself.
                triggers=list(args.host_root_disk),
                opts=pulumi.ResourceOptions(
                    parent=self, additional_secret_outputs=["stdin", "stdout", "stderr"]
                ),
            )

        self.container_name = container.name
        self.repository = repo
        self.restic_password = pulumi.Output.secret(password.result)
        self.s3_access_key = credentials.access
        self.s3_secret_key = pulumi.Output.secret(credentials.secret)
        self.register_outputs(
            {
                "container_name": self.container_name,
                "repository": self.repository,
                "restic_password": self.restic_password,
            }
        )
