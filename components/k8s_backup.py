"""K8sHomeBackup: restic backups of every user's volume and the hub database inside the
cluster (renderers.k8s_backup): the repository's credentials as a Secret, the scripts and Job
templates as a ConfigMap, the service account the CronJob's script uses, and the CronJob."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes

from catalog.jetstream2 import OBJECT_STORE_REGION
from renderers import k8s_backup
from renderers.k8s_backup import secret_env


@dataclass(frozen=True)
class K8sHomeBackupArgs:
    spec: k8s_backup.K8sBackupSpec
    # From the BackupStore: where the repository is and how to open it.
    repository: pulumi.Input[str]
    s3_access_key: pulumi.Input[str]
    s3_secret_key: pulumi.Input[str]
    restic_password: pulumi.Input[str]
    # The hub's namespace and release: the CronJob backs up what they make.
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    deleted_with: pulumi.Resource | None = None


class K8sHomeBackup(pulumi.ComponentResource):
    cronjob_name: str
    # The command that restores a user's home (README, docs/k8s.md).
    restore_command: str

    def __init__(
        self, name: str, args: K8sHomeBackupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jshub:index:K8sHomeBackup", name, None, opts)
        ns = args.spec.namespace
        in_ns = pulumi.ResourceOptions(
            parent=self, depends_on=list(args.depends_on), deleted_with=args.deleted_with
        )

        # Any, not dict: mypy checking a dict[Any, Any] against the SDK's ObjectMeta input union
        # (args class | TypedDict | Output | Awaitable) takes minutes and gigabytes.
        def meta(obj: dict[str, Any]) -> Any:
            return obj["metadata"]

        secret_obj = k8s_backup.restic_secret(ns, {key: "" for key in k8s_backup.SECRET_KEYS})
        env = pulumi.Output.all(
            args.repository, args.s3_access_key, args.s3_secret_key, args.restic_password
        ).apply(lambda v: secret_env(v[0], v[1], v[2], v[3], OBJECT_STORE_REGION))
        secret = kubernetes.core.v1.Secret(
            f"{name}-credentials",
            metadata=meta(secret_obj),
            type=secret_obj["type"],
            string_data=pulumi.Output.secret(env),  # type: ignore[arg-type]
            opts=pulumi.ResourceOptions.merge(
                in_ns, pulumi.ResourceOptions(additional_secret_outputs=["stringData", "data"])
            ),
        )
        cm_obj = k8s_backup.configmap(args.spec)
        scripts = kubernetes.core.v1.ConfigMap(
            f"{name}-scripts", metadata=meta(cm_obj), data=cm_obj["data"], opts=in_ns
        )
        sa_obj = k8s_backup.service_account(ns)
        account = kubernetes.core.v1.ServiceAccount(
            f"{name}-account",
            metadata=meta(sa_obj),
            automount_service_account_token=sa_obj["automountServiceAccountToken"],
            opts=in_ns,
        )
        role_obj = k8s_backup.role(ns)
        role = kubernetes.rbac.v1.Role(
            f"{name}-role", metadata=meta(role_obj), rules=role_obj["rules"], opts=in_ns
        )
        binding_obj = k8s_backup.role_binding(ns)
        binding = kubernetes.rbac.v1.RoleBinding(
            f"{name}-role-binding",
            metadata=meta(binding_obj),
            role_ref=binding_obj["roleRef"],
            subjects=binding_obj["subjects"],
            opts=in_ns,
        )
        cron_obj = k8s_backup.cronjob(args.spec)
        kubernetes.batch.v1.CronJob(
            f"{name}-cronjob",
            metadata=meta(cron_obj),
            spec=cron_obj["spec"],
            opts=pulumi.ResourceOptions.merge(
                in_ns, pulumi.ResourceOptions(depends_on=[secret, scripts, account, role, binding])
            ),
        )
        self.cronjob_name = k8s_backup.CRONJOB
        self.restore_command = k8s_backup.restore_command(ns, "restore", "USER", "[PATH]", "[--snapshot ID]")
        self.register_outputs({"cronjob_name": self.cronjob_name, "restore_command": self.restore_command})
