"""An SVG picture of the planned architecture, drawn from the plan's resources: the hub's URL,
security groups, VMs by role (with flavor and data volumes), cluster services, the network."""

from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import Any

W = 860
BOX_H = 70


def _of(plan: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in plan["resources"] if r["type"] == kind and r["custom"]]


def _chart_name(chart: Any) -> str:
    """A release's chart by name: the folder name of a vendored chart's path."""
    return str(chart).rstrip("/").rsplit("/", 1)[-1] if chart else ""


def _box(x: float, y: float, w: float, h: float, fill: str, lines: list[str], bold_first: bool = True) -> str:
    parts = [
        f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="8" fill="{fill}" stroke="#334" stroke-width="1.2"/>'
    ]
    for i, text in enumerate(lines):
        weight = ' font-weight="bold"' if i == 0 and bold_first else ""
        parts.append(
            f'<text x="{x + w / 2}" y="{y + 20 + i * 16}" text-anchor="middle" font-size="13"{weight}>{escape(text)}</text>'
        )
    return "\n".join(parts)


def _arrow(x1: float, y1: float, x2: float, y2: float, label: str = "") -> str:
    out = f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#334" stroke-width="1.5" marker-end="url(#arrow)"/>'
    if label:
        out += f'\n<text x="{(x1 + x2) / 2 + 6}" y="{(y1 + y2) / 2}" font-size="12" fill="#445">{escape(label)}</text>'
    return out


def render_svg(plan: dict[str, Any]) -> str:
    url = str(plan["outputs"].get("url", ""))
    instances = _of(plan, "openstack:compute/instance:Instance")
    volumes = {v["name"]: v for v in _of(plan, "openstack:blockstorage/volume:Volume")}
    attached: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in _of(plan, "openstack:compute/volumeAttach:VolumeAttach"):
        deps = a.get("data_dependencies", {})
        server = next(iter(deps.get("instanceId", [])), None)
        vol = next(iter(deps.get("volumeId", [])), None)
        if server and vol in volumes:
            attached[server].append(volumes[vol])
    roles: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i in instances:
        roles[str(i["inputs"].get("metadata", {}).get("role", "vm"))].append(i)
    groups = _of(plan, "openstack:networking/secGroup:SecGroup")
    fip_ports = {
        port
        for f in _of(plan, "openstack:networking/floatingIp:FloatingIp")
        for port in f.get("data_dependencies", {}).get("portId", [])
    }
    services = [
        f"{_chart_name(r['inputs'].get('chart')) or r['inputs'].get('name') or r['name']}"
        for r in plan["resources"]
        if r["custom"] and r["type"] in ("kubernetes:helm.sh/v3:Release", "docker:index/service:Service")
    ]
    network_created = bool(_of(plan, "openstack:networking/network:Network"))

    body: list[str] = []
    y: float = 20
    body.append(_box(W / 2 - 220, y, 440, 46, "#e8f1ff", ["Users' browsers", url or "(no public URL)"]))
    y += 46
    body.append(_arrow(W / 2, y, W / 2, y + 40, "HTTPS 443 (80 redirects)"))
    y += 40
    body.append(
        _box(
            40,
            y,
            W - 80,
            40,
            "#fff4e0",
            [f"security groups: {', '.join(g['inputs'].get('name', g['name']) for g in groups) or 'none'}"],
            False,
        )
    )
    y += 60
    col_w = (W - 80) / max(1, len(roles))
    tallest = 0.0
    for idx, (role, members) in enumerate(sorted(roles.items())):
        x = 40 + idx * col_w + 8
        first = members[0]
        flavor = first["inputs"].get("flavorName", "?")
        title = f"{role} × {len(members)}" if len(members) > 1 else role
        public = sum(
            1 for m in members if set(m.get("data_dependencies", {}).get("networks", [])) & fip_ports
        )
        reach = (
            "floating IP"
            if public == len(members)
            else f"{public} with floating IP"
            if public
            else "private address"
        )
        lines = [title, f"{flavor}, {first['inputs'].get('imageName', '')}", reach]
        body.append(_arrow(x + (col_w - 16) / 2, y - 20, x + (col_w - 16) / 2, y))
        body.append(_box(x, y, col_w - 16, BOX_H, "#e9f7ef", lines))
        vy = y + BOX_H + 14
        vols = [v for m in members for v in attached.get(m["name"], [])]
        if vols:
            size = sum(float(v["inputs"].get("size", 0)) for v in vols)
            label = (
                f"{len(vols)} volume(s), {size:g} GB"
                if len(vols) > 1
                else f"volume {vols[0]['name']}, {size:g} GB"
            )
            flag = (
                "protected"
                if all(v["protect"] for v in vols)
                else "retained"
                if all(v["retain_on_delete"] for v in vols)
                else "UNPROTECTED"
            )
            body.append(_arrow(x + (col_w - 16) / 2, y + BOX_H, x + (col_w - 16) / 2, vy))
            body.append(_box(x, vy, col_w - 16, 44, "#f3e8ff", [label, flag], False))
            tallest = max(tallest, BOX_H + 14 + 44)
        else:
            tallest = max(tallest, BOX_H)
    y += tallest + 24
    if services:
        body.append(
            _box(40, y, W - 80, 40, "#fdecef", ["services: " + ", ".join(sorted(set(services)))], False)
        )
        y += 60
    net = "new network + subnet + router" if network_created else "the allocation's auto_allocated_network"
    body.append(_box(40, y, W - 80, 40, "#eef0f4", [f"network: {net}; floating IPs from 'public'"], False))
    y += 60
    header = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" viewBox="0 0 {W} {y}" '
        'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">\n'
        '<defs><marker id="arrow" markerWidth="10" markerHeight="10" refX="9" refY="3" orient="auto">'
        '<path d="M0,0 L9,3 L0,6 z" fill="#334"/></marker></defs>\n'
        f'<rect width="{W}" height="{y}" fill="white"/>\n'
        f"<title>{escape(plan['stack'])} ({escape(plan['scenario'])})</title>\n"
    )
    return header + "\n".join(body) + "\n</svg>\n"


def write_docs() -> None:
    """`make diagrams`: refresh docs/<stack>-architecture.svg for every example stack."""
    from planner.plan import PROJECT_DIR, plan_stack

    for stack_file in sorted(PROJECT_DIR.glob("Pulumi.*.yaml")):
        stack = stack_file.name[len("Pulumi.") : -len(".yaml")]
        out = PROJECT_DIR / "docs" / f"{stack}-architecture.svg"
        out.parent.mkdir(exist_ok=True)
        out.write_text(render_svg(plan_stack(stack)))
        print(f"wrote {out.relative_to(PROJECT_DIR)}")


if __name__ == "__main__":
    write_docs()
