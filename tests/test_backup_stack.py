"""Backups in the resource graph, under Pulumi mocks: the container is protected, the S3
credentials' secret and the repository password stay secret, the credentials reach the VM only
on a remote command's standard input with logging off, and no plan carries them in the clear."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pytest

import components.backup
import planner.mocks
from components.backup import BackupStore, BackupStoreArgs, container_name
from planner.mocks import SECRET
from planner.plan import plan_stack
from tests.backup_builders import K8S_SPEC, spec
from tests.conftest import one, run_mocked

CONTAINER = "openstack:objectstorage/container:Container"
EC2 = "openstack:identity/ec2CredentialV3:Ec2CredentialV3"
COMMAND = "command:remote:Command"
PASSWORD = "random:index/randomPassword:RandomPassword"


def test_backup_store_protects_the_container_and_keeps_credentials_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rendered: list[str] = []
    real = components.backup.render_env_file

    def recording(*args: str) -> str:
        rendered.append(real(*args))
        return rendered[-1]

    monkeypatch.setattr(components.backup, "render_env_file", recording)

    def program() -> None:
        BackupStore(
            "backup",
            BackupStoreArgs(
                container_name="jshub-backup-cis230000-test",
                spec=spec(),
                host_connection=command.remote.ConnectionArgs(host="203.0.113.5", user="ubuntu"),
                host_root_disk=[pulumi.Output.from_input("server-id"), "Featured-Ubuntu24"],
            ),
        )

    rec = run_mocked(program)
    container = one(rec, CONTAINER)
    assert container.protect and container.retain_on_delete
    # The password that encrypts the repository lives as long as the backups.
    password = one(rec, PASSWORD)
    assert password.protect and password.retain_on_delete
    assert container.inputs["name"] == "jshub-backup-cis230000-test"
    assert container.inputs.get("forceDestroy") in (None, False)
    assert "secret" in one(rec, EC2).additional_secret_outputs
    install = one(rec, COMMAND)
    assert install.inputs["logging"] == "none"
    assert install.inputs["stdin"] == SECRET
    assert {"stdin", "stdout", "stderr"} <= set(install.additional_secret_outputs)
    # The host's root disk (its ID and image): a replaced or rebuilt server gets it all again.
    assert install.inputs["triggers"] == ["server-id", "Featured-Ubuntu24"]
    assert "jshub-backup.timer" in install.inputs["create"]
    # The environment file was really rendered (apply ran), from the container and credentials.
    assert len(rendered) == 1
    assert (
        "RESTIC_REPOSITORY=s3:https://js2.jetstream-cloud.org:8001/jshub-backup-cis230000-test\n"
        in rendered[0]
    )
    store = one(rec, "jshub:index:BackupStore")
    assert {r.parent_urn for r in rec.registrations if r.custom} == {store.urn}


def test_the_sdk_itself_marks_the_ec2_secret_secret() -> None:
    """Read from pulumi_openstack: its Ec2CredentialV3 adds `secret` to additional_secret_outputs."""
    import inspect

    import pulumi_openstack

    source = inspect.getsource(pulumi_openstack.identity.Ec2CredentialV3._internal_init)
    assert 'additional_secret_outputs=["secret"]' in source


@pytest.mark.parametrize(
    ("allocation", "stack", "expected"),
    [
        ("cis230000", "dev", "jshub-backup-cis230000-dev"),
        ("cis230000", "Prod_Hub.2", "jshub-backup-cis230000-prod-hub-2"),
        ("cis230000", "x" * 80, "jshub-backup-cis230000-" + "x" * 40),
    ],
)
def test_default_container_name_is_a_valid_bucket_name(allocation: str, stack: str, expected: str) -> None:
    assert container_name(allocation, stack) == expected


MARK_PASSWORD = "resticpasswordmark" + "7" * 30
MARK_EC2 = "ec2secretmark" + "9" * 19


@pytest.fixture
def marked_mocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mocks' values for the repository password and the EC2 secret, made recognisable."""
    real = planner.mocks._computed

    def computed(args: Any, image_ids: Any) -> dict[str, Any]:
        out = real(args, image_ids)
        if args.typ == PASSWORD and args.name == "backup-restic-password":
            out = {**out, "result": MARK_PASSWORD}
        if args.typ == EC2:
            out = {**out, "secret": MARK_EC2}
        return out

    monkeypatch.setattr(planner.mocks, "_computed", computed)


@pytest.mark.parametrize("stack", ["dev", "gateway-hpc", "persistent-swarm"])
def test_plans_back_up_and_show_no_backup_secret(
    stack: str, marked_mocks: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from planner.__main__ import main

    rendered: list[str] = []
    real = components.backup.render_env_file
    monkeypatch.setattr(
        components.backup, "render_env_file", lambda *a: rendered.append(real(*a)) or rendered[-1]
    )

    out = tmp_path / "plan"
    assert main(["--stack", stack, "--out", str(out), "--json", str(tmp_path / "plan.json")]) == 0
    plan = json.loads((tmp_path / "plan.json").read_text())
    names = {r["name"] for r in plan["resources"]}
    assert {"backup-container", "backup-s3-credentials", "backup-restic-password", "backup-install"} <= names
    assert plan["outputs"]["restic_password"] == SECRET
    everything = [(tmp_path / "plan.json").read_text()] + [
        p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()
    ]
    # The values went into the VM's environment file, and nowhere a plan shows.
    assert len(rendered) == 1 and MARK_PASSWORD in rendered[0] and MARK_EC2 in rendered[0]
    for text in everything:
        assert MARK_PASSWORD not in text and MARK_EC2 not in text
    install = next(r for r in plan["resources"] if r["name"] == "backup-install")
    home_root = "/export/home" if stack == "persistent-swarm" else "/data/home"
    assert f"home_root={home_root}\n" in install["inputs"]["create"]


def test_disabled_stacks_have_no_backup() -> None:
    k8s = plan_stack("workshop-k8s", overrides={"backup": {"enabled": False}})
    assert not [
        r for r in k8s["resources"] if r["type"] in (CONTAINER, EC2) or r["name"].startswith("home-backup")
    ]
    off = plan_stack("dev", overrides={"backup": {"enabled": False}})
    assert not [r for r in off["resources"] if r["name"].startswith("backup")]
    assert "restic_password" not in off["outputs"]


def test_swarm_backs_up_the_managers_volume() -> None:
    plan = plan_stack("persistent-swarm")
    install = next(r for r in plan["resources"] if r["name"] == "backup-install")
    manager = next(r for r in plan["resources"] if r["name"] == "swarm-manager-server")
    assert "database=/export/hub/jupyterhub.sqlite\n" in install["inputs"]["create"]
    assert install["data_dependencies"].get("triggers") == [manager["name"]]


def test_plan_reports_schedule_retention_and_object_storage(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from planner.__main__ import main

    dev = plan_stack(
        "dev", overrides={"backup": {"schedule": "Mon..Fri *-*-* 02:00", "retention": {"keepMonthly": 0}}}
    )
    b = dev["backup"]
    assert b["schedule"] == "Mon..Fri *-*-* 02:00"
    assert b["retention"] == {"keepDaily": 7, "keepWeekly": 4, "keepMonthly": 0}
    # 100 GB of homes × 0.8 × (1 + 0.05 × 11 kept snapshots) = 124 GB, plus the 100 GB volume.
    assert b["object_storage"]["stored_gb"] == 124 and b["storage_gb"] == 224
    assert b["su_per_hour"] == 0 and b["containers"] == ["jshub-backup-cis000000-dev"]

    assert main(["--stack", "persistent-swarm", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "on schedule '*-*-* 03:15:00'" in text and "keeps 7 daily, 4 weekly, 6 monthly" in text
    assert "up to about 740 GB (1.48 GB per GB of homes)" in text
    assert "! more than the default 1000 GB of Jetstream2 Storage" in text
    k8s = plan_stack("workshop-k8s")
    b = k8s["backup"]
    assert b["enabled"] and b["cron"] == "15 3 * * *"
    # 100 users × 3 GB + 50 GB shared + 1 GB database = 351 GB × 0.8 × (1 + 0.05 × 17) = 519 GB.
    assert b["object_storage"]["homes_gb"] == 351 and b["object_storage"]["stored_gb"] == 519
    assert b["containers"] == ["jshub-backup-cis000000-workshop-k8s"]


@pytest.mark.parametrize("stack", ["dev", "persistent-swarm"])
def test_a_schedule_or_retention_change_touches_only_the_backup_install(stack: str) -> None:
    """They are not in user data: the servers stay, only the install command runs again."""
    before = {r["name"]: r for r in plan_stack(stack)["resources"]}
    after = {
        r["name"]: r
        for r in plan_stack(
            stack, overrides={"backup": {"schedule": "*-*-* 01:00:00", "retention": {"keepDaily": 14}}}
        )["resources"]
    }
    assert before.keys() == after.keys()
    changed = sorted(n for n in before if before[n]["inputs"] != after[n]["inputs"])
    assert changed == ["backup-install"]
    assert "OnCalendar=*-*-* 01:00:00" in after["backup-install"]["inputs"]["create"]
    assert "--keep-daily 14" in after["backup-install"]["inputs"]["create"]


def test_policy_keeps_the_backup_container() -> None:
    from policy import rules

    kept = rules.ResourceMeta("backup-container", protect=True, retain_on_delete=True)
    assert rules.data_is_kept(rules.OBJECT_CONTAINER, {"name": "b"}, kept) == []
    [unprotected] = rules.data_is_kept(rules.OBJECT_CONTAINER, {"name": "b"}, rules.ResourceMeta("c"))
    assert "deleting it deletes the backups" in unprotected
    [forced] = rules.data_is_kept(rules.OBJECT_CONTAINER, {"name": "b", "forceDestroy": True}, kept)
    assert "every backup in it would be lost" in forced
    # The planned stacks meet the rule.
    assert plan_stack("dev")["policy_violations"] == []


def test_k8s_plan_backs_up_in_the_cluster_and_shows_no_backup_secret(
    marked_mocks: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import components.k8s_backup
    from planner.__main__ import main

    made: list[dict[str, str]] = []
    real = components.k8s_backup.secret_env
    monkeypatch.setattr(components.k8s_backup, "secret_env", lambda *a: made.append(real(*a)) or made[-1])
    out = tmp_path / "plan"
    assert main(["--stack", "workshop-k8s", "--out", str(out), "--json", str(tmp_path / "plan.json")]) == 0
    plan = json.loads((tmp_path / "plan.json").read_text())
    by_name = {r["name"]: r for r in plan["resources"]}
    assert {"backup-container", "backup-s3-credentials", "backup-restic-password"} <= set(by_name)
    # No VM to install on: the cluster does the work.
    assert "backup-install" not in by_name
    secret = by_name["home-backup-credentials"]
    assert secret["type"] == "kubernetes:core/v1:Secret"
    assert secret["inputs"]["stringData"] == SECRET
    assert secret["secret_inputs"] == ["stringData"]
    cron = by_name["home-backup-cronjob"]
    assert cron["inputs"]["spec"]["schedule"] == "15 3 * * *"
    assert {"home-backup-credentials", "home-backup-scripts", "home-backup-role-binding"} <= set(
        cron["depends_on"]
    )
    # The Secret's values were made (apply ran) from the store's credentials and password.
    assert len(made) == 1 and made[0]["RESTIC_PASSWORD"] == MARK_PASSWORD
    assert made[0]["AWS_SECRET_ACCESS_KEY"] == MARK_EC2
    assert (
        made[0]["RESTIC_REPOSITORY"]
        == "s3:https://js2.jetstream-cloud.org:8001/jshub-backup-cis000000-workshop-k8s"
    )
    assert plan["outputs"]["restic_password"] == SECRET
    everything = [(tmp_path / "plan.json").read_text()] + [
        p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()
    ]
    for text in everything:
        assert MARK_PASSWORD not in text and MARK_EC2 not in text


def test_k8s_home_backup_component_keeps_its_secret_secret() -> None:
    from components.k8s_backup import K8sHomeBackup, K8sHomeBackupArgs

    def program() -> None:
        K8sHomeBackup(
            "home-backup",
            K8sHomeBackupArgs(
                spec=K8S_SPEC,
                repository="s3:https://js2.jetstream-cloud.org:8001/b",
                s3_access_key="access",
                s3_secret_key=pulumi.Output.secret("secret-key"),
                restic_password=pulumi.Output.secret("password"),
            ),
        )

    rec = run_mocked(program)
    secret = one(rec, "kubernetes:core/v1:Secret")
    assert {"stringData", "data"} <= set(secret.additional_secret_outputs)
    assert secret.inputs["metadata"]["name"] == "home-backup-restic"
    cron = one(rec, "kubernetes:batch/v1:CronJob")
    assert (
        cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] == "home-backup"
    )
    parent = one(rec, "jshub:index:K8sHomeBackup")
    assert {r.parent_urn for r in rec.registrations if r.custom} == {parent.urn}


def test_a_new_hub_name_leaves_the_backups_host_alone() -> None:
    """restic's --host is the project and stack, not the hub's name: a rename does not split
    the history, and the install command does not even run again."""
    before = {r["name"]: r for r in plan_stack("dev")["resources"]}["backup-install"]
    after = {r["name"]: r for r in plan_stack("dev", overrides={"hubHostname": "lab"})["resources"]}[
        "backup-install"
    ]
    assert before["inputs"]["create"] == after["inputs"]["create"]
    assert "\nhost=jupyterhub-jetstream-dev\n" in before["inputs"]["create"]


def test_a_new_hub_name_leaves_the_k8s_backups_host_alone() -> None:
    """The cluster's scripts carry the same stable host: a rename changes nothing they hold."""

    def scripts(plan: dict[str, Any]) -> dict[str, str]:
        return {r["name"]: r for r in plan["resources"]}["home-backup-scripts"]["inputs"]["data"]

    before = scripts(plan_stack("workshop-k8s"))
    after = scripts(plan_stack("workshop-k8s", overrides={"hubHostname": "lab"}))
    assert before == after
    assert "\nhost=jupyterhub-jetstream-workshop-k8s\n" in before["volume.sh"]
