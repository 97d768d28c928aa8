"""What the plan says about backups: when they run, what they keep, and how much object storage
they may take from the allocation.

Object storage costs no SUs. It draws on the allocation's Jetstream2 Storage, allocated in GB
(every allocation gets 1 TB; more is exchanged at 1 ACCESS credit per GB:
docs.jetstream-cloud.org/general/storage), as the volumes do."""

from __future__ import annotations

from typing import Any

from catalog.jetstream2 import DEFAULT_STORAGE_GB
from stackconfig import StackConfig, sizing
from stackconfig.backup import cron_schedule

CONTAINER = "openstack:objectstorage/container:Container"
VOLUME = "openstack:blockstorage/volume:Volume"

# Planning assumptions, not measurements of real hubs; change them here when real figures exist.
# restic compresses (repository format 2, restic >= 0.14) and deduplicates; notebooks, code and
# text shrink a lot, data files that are already compressed (images, HDF5, Parquet, archives)
# hardly at all. 0.8 assumes a mix dominated by such data.
STORED_FRACTION = 0.8
# Each snapshot the retention keeps holds about this share of the homes that no other kept
# snapshot shares (files written, then changed or deleted, within its period).
UNIQUE_PER_SNAPSHOT = 0.05


def homes_capacity_gb(cfg: StackConfig) -> int:
    """The most the homes can hold: the volume they live on (swarm: the NFS volume; k8s: one
    volume per user, counted for concurrentUsers users, with the shared folder and the database)."""
    if cfg.scenario == "swarm" and cfg.swarm is not None:
        return cfg.swarm.nfs_volume_gb
    if cfg.scenario == "k8s" and cfg.k8s is not None:
        return cfg.concurrent_users * cfg.k8s.user_storage_gb + cfg.k8s.shared_data_gb + sizing.HUB_DB_GB
    return cfg.hub_data_volume_gb


def report(cfg: StackConfig, resources: list[dict[str, Any]]) -> dict[str, Any]:
    containers = [r["inputs"].get("name") for r in resources if r["type"] == CONTAINER and r["custom"]]
    volume_gb = sum(
        float(r["inputs"].get("size", 0)) for r in resources if r["type"] == VOLUME and r["custom"]
    )
    b = cfg.backup
    if not b.on_for(cfg.scenario) or not containers:
        why = (
            "backup.enabled is false" if b.enabled is False else f"scenario {cfg.scenario} has no backup yet"
        )
        return {"enabled": False, "why": why, "containers": containers, "volume_gb": volume_gb}
    keep = b.retention
    snapshots = keep.keep_daily + keep.keep_weekly + keep.keep_monthly
    factor = STORED_FRACTION * (1 + UNIQUE_PER_SNAPSHOT * snapshots)
    homes_gb = homes_capacity_gb(cfg)
    stored_gb = round(homes_gb * factor)
    k8s = cfg.scenario == "k8s"
    return {
        "enabled": True,
        "containers": containers,
        "schedule": b.schedule,
        # k8s: the CronJob's schedule, and what says a run is too old.
        "cron": cron_schedule(b.schedule) if k8s else None,
        "freshness": (
            "alert BackupTooOld and `home-backup.sh check` fire" if k8s else "jshub-backup-check fails"
        ),
        "retention": {
            "keepDaily": keep.keep_daily,
            "keepWeekly": keep.keep_weekly,
            "keepMonthly": keep.keep_monthly,
        },
        "max_age_hours": b.max_age_hours,
        "object_storage": {
            "homes_gb": homes_gb,
            "per_homes_gb": round(factor, 2),
            "stored_gb": stored_gb,
            "basis": (
                f"homes filling their {homes_gb} GB {'of volumes' if k8s else 'volume'} (the most they can hold) × {STORED_FRACTION:g} "
                f"after restic's compression and deduplication × (1 + {UNIQUE_PER_SNAPSHOT:g} × {snapshots} "
                "kept snapshots, each holding that share of data no other kept snapshot has); "
                "assumptions in planner/backup.py"
            ),
        },
        "volume_gb": volume_gb,
        "storage_gb": volume_gb + stored_gb,
        "allocation_storage_gb": DEFAULT_STORAGE_GB,
        "su_per_hour": 0,
        "charged": "no SUs: object storage and volumes draw on the allocation's Jetstream2 Storage in GB "
        f"(default {DEFAULT_STORAGE_GB} GB; more at 1 ACCESS credit per GB)",
    }


def lines(info: dict[str, Any]) -> list[str]:
    """The plan's text about backups."""
    if not info["enabled"]:
        return [f"Backups: off ({info['why']})"]
    keep = info["retention"]
    store = info["object_storage"]
    when = f"{info['schedule']!r} (systemd OnCalendar, UTC)"
    if info["cron"]:
        when += f", CronJob home-backup at {info['cron']!r} (cron, UTC)"
    out = [
        f"Backups: restic to object storage container {', '.join(info['containers'])} on schedule "
        f"{when}; keeps {keep['keepDaily']} daily, "
        f"{keep['keepWeekly']} weekly, {keep['keepMonthly']} monthly; {info['freshness']} after "
        f"{info['max_age_hours']} h without a backup",
        f"  object storage: up to about {store['stored_gb']} GB ({store['per_homes_gb']:g} GB per GB of homes): "
        f"{store['basis']}",
        f"  storage: volumes {info['volume_gb']:g} GB + backups ~{store['stored_gb']} GB = "
        f"{info['storage_gb']:g} GB of the allocation's storage; {info['charged']}",
    ]
    if info["storage_gb"] > info["allocation_storage_gb"]:
        out.append(
            f"  ! more than the default {info['allocation_storage_gb']} GB of Jetstream2 Storage if the homes "
            "fill their volume: request more storage, shorten the retention, or watch the bucket's size"
        )
    return out
