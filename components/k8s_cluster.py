"""K8sCluster: a Kubernetes cluster on Jetstream2, built from VMs with k3s or by Magnum, and a
`kubernetes.Provider` for it."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_kubernetes as kubernetes
import pulumi_openstack as openstack
import pulumi_random as random
import pulumi_tls as tls

from catalog import EXTERNAL_NETWORK
from catalog.jetstream2 import DEFAULT_LOGIN_USER
from components.firewall import Ingress, RoleSecurityGroup, RoleSecurityGroupArgs, ssh_ingress, web_ingress
from components.vm import DataVolume, JetstreamVM, JetstreamVMArgs, VolumeIds, a_record, removal_step
from renderers import k3s, nvidia
from stackconfig import StackConfig, sizing
from stackconfig.model import K8sConfig

OSD_VOLUME = "ceph"
# A control-plane node's etcd datastore, k3s certificates and Ceph mon store (renderers.k3s
# STATE_BINDS): small, so three nodes' worth stays well inside the default 10-volume quota
# next to the Ceph volumes.
STATE_VOLUME = "state"
STATE_VOLUME_GB = 20
# Remote commands start while the VM boots: keep dialling for ~10 minutes.
DIAL_ERROR_LIMIT = 60
PER_DIAL_TIMEOUT_S = 10
# The hub's load balancer: the proxy's ports, probed every 5 s; a node that misses 3 probes
# (about 15 s) gets no new connections until it answers again.
HUB_PORTS = (80, 443)
LB_MONITOR_DELAY_S = 5
LB_MONITOR_TIMEOUT_S = 3
LB_MONITOR_RETRIES = 3
# magnum: the cluster's default node group, kept at its minimum; workers are a node group.
DEFAULT_GROUP_NODES = 1


# The share of workers a roll-out may take away at once (at least one).
WORKER_ROLL_FRACTION = 0.1


def worker_lanes(workers: int) -> int:
    """How many workers change at the same time during a roll-out."""
    return max(1, math.ceil(workers * WORKER_ROLL_FRACTION))


def cluster_ports() -> list[Ingress]:
    """Ports the nodes use among themselves, open only to members of the nodes' own group."""
    ports = [
        ("ssh between nodes (the stack's jump host)", "tcp", 22, 22),
        ("Kubernetes API from nodes", "tcp", 6443, 6443),
        ("kubelet", "tcp", 10250, 10250),
        ("etcd", "tcp", 2379, 2380),
        ("flannel VXLAN", "udp", 8472, 8472),
        ("Ceph mon (msgr2)", "tcp", 3300, 3300),
        ("Ceph mon (msgr1)", "tcp", 6789, 6789),
        ("Ceph OSD, mgr and MDS", "tcp", 6800, 7300),
    ]
    return [Ingress(d, proto, lo, hi, from_self=True) for d, proto, lo, hi in ports]  # type: ignore[arg-type]


def api_ingress(cidrs: list[str]) -> list[Ingress]:
    """The API from the admin networks, never from the whole internet, even when
    allowSshFromAnywhere lets SSH be."""
    return [
        Ingress(f"Kubernetes API from {c}", "tcp", 6443, 6443, cidr=c)
        for c in cidrs
        if ipaddress.ip_network(c).prefixlen > 0
    ]


@dataclass(frozen=True)
class NodeSteps:
    """A k3s node's remote commands, in the order they run."""

    token: command.remote.Command
    version: command.remote.Command
    ready: command.remote.Command


@dataclass(frozen=True)
class K8sClusterArgs:
    config: StackConfig
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    # The nodes' subnet, from which the load balancer may reach them (None: not known).
    subnet_cidr: str | None = None
    # The nodes whose server the stack already holds (stacks/deployed.py); None when that could
    # not be read, and then every node is treated as existing. An existing node's server waits
    # for the previous node's readiness, so a change rolls through them one at a time; a new
    # node is created at once, with every other new node.
    existing_nodes: frozenset[str] | None = None


class K8sCluster(pulumi.ComponentResource):
    """k3s: control-plane VMs with embedded etcd (each with protected Ceph and state volumes),
    worker VMs, created all at once and changed one at a time, a join token delivered over SSH, the
    kubeconfig fetched over SSH, and an Octavia load balancer as the hub's entry point. magnum:
    a `containerinfra.Cluster` from a template looked up by name, its workers a node group. Either way a provider with a
    stable `cluster_identifier`, so a new kubeconfig (a rotated certificate, a new address)
    updates the provider instead of replacing everything deployed through it."""

    engine: str
    kubeconfig: pulumi.Output[str]
    provider: kubernetes.Provider
    ingress_ip: pulumi.Output[str]
    # k3s: the first node's floating IP (the stack's SSH, and the Kubernetes API when the load
    # balancer has no API listener: subnet unknown); None with magnum. (adminCidrs without an
    # IPv4 network other than 0.0.0.0/0 is refused with the config: stackconfig.rules.)
    admin_ip: pulumi.Output[str] | None
    # k3s: node name -> Cinder volume ID of the node's Ceph OSD. Empty with magnum.
    osd_volume_ids: dict[str, pulumi.Output[str]]
    node_names: list[str]
    # The resource whose deletion takes the whole cluster with it: in-cluster objects name it in
    # `deleted_with`, so `pulumi destroy` does not uninstall charts from a cluster that is going.
    lifeline: pulumi.Resource
    # Done when every worker has joined and is Ready: charts whose pods run on workers (the
    # hub's image puller and placeholders) wait for it.
    workers_ready: list[pulumi.Resource]
    # k3s: each node's readiness command, in roll-out order (control plane first).
    node_ready: list[pulumi.Resource]
    # k3s: each worker's removal step, whose delete command drains it before its server goes.
    worker_removals: list[pulumi.Resource]

    def __init__(self, name: str, args: K8sClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jshub:index:K8sCluster", name, None, opts)
        cfg = args.config
        if cfg.k8s is None:
            raise ValueError("K8sCluster needs the k8s section of the stack configuration")
        self.engine = cfg.k8s.engine
        self.osd_volume_ids = {}
        self.node_names = []
        self.node_ready = []
        self.worker_removals = []
        if cfg.k8s.engine == "k3s":
            kubeconfig = self._k3s(name, cfg, cfg.k8s, args)
        else:
            kubeconfig = self._magnum(name, cfg, cfg.k8s, args)
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.provider = kubernetes.Provider(
            f"{name}-provider",
            kubeconfig=self.kubeconfig,
            cluster_identifier=f"{pulumi.get_project()}-{pulumi.get_stack()}-{name}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs(
            {
                "kubeconfig": self.kubeconfig,
                "ingress_ip": self.ingress_ip,
                "osd_volume_ids": self.osd_volume_ids,
            }
        )

    # --- k3s -------------------------------------------------------------------------------

    def _k3s(self, name: str, cfg: StackConfig, k8s: K8sConfig, args: K8sClusterArgs) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        stack = pulumi.get_stack()
        deploy_key = tls.PrivateKey(f"{name}-deploy-key", algorithm="ED25519", opts=child)
        token = random.RandomPassword(f"{name}-join-token", length=64, special=False, opts=child)
        # The API through the load balancer: the nodes must let it in from the subnet (known),
        # and the listener must have networks to allow (an empty list would allow every address);
        # Octavia takes only networks of its VIP's IP version (IPv4) there.
        api_cidrs = [str(i.cidr) for i in api_ingress(list(cfg.admin_cidrs)) if i.ethertype == "IPv4"]
        api_via_lb = bool(args.subnet_cidr and api_cidrs)
        nodes_group = RoleSecurityGroup(
            f"{stack}-{name}-nodes",
            RoleSecurityGroupArgs(
                role="k8s-node",
                ingress=ssh_ingress(list(cfg.admin_cidrs))
                + api_ingress(list(cfg.admin_cidrs))
                + cluster_ports()
                # The load balancer reaches the nodes from its own address in the subnet, which
                # is not known in advance; 80/443 are the ports that are public anyway, and the
                # API is let in from the subnet when the stack knows it.
                + web_ingress()
                + (
                    [
                        Ingress(
                            "Kubernetes API from the load balancer's subnet",
                            "tcp",
                            6443,
                            6443,
                            cidr=args.subnet_cidr,
                        )
                    ]
                    if api_via_lb
                    else []
                ),
            ),
            opts=child,
        )
        web_group = RoleSecurityGroup(
            f"{stack}-{name}-web",
            RoleSecurityGroupArgs(
                role="k8s-hub-entry",
                ingress=web_ingress() + (api_ingress(api_cidrs) if api_via_lb else []),
            ),
            opts=child,
        )

        def node(
            node_name: str,
            role: str,
            flavor: str,
            labels: dict[str, str],
            server_ip: pulumi.Output[str] | None,
            entry: bool = False,
            osd: bool = False,
            after: Sequence[pulumi.Resource] = (),
            gpu: bool = False,
        ) -> JetstreamVM:
            kind = "server" if role == "control-plane" else "worker"

            def user_data(volumes: VolumeIds) -> pulumi.Output[str]:
                server = server_ip if server_ip is not None else pulumi.Output.from_input("")
                state = volumes.get(STATE_VOLUME, pulumi.Output.from_input(""))
                return pulumi.Output.all(server, deploy_key.public_key_openssh, state).apply(
                    lambda v: k3s.render_k3s_cloud_init(
                        k3s.K3sNodeSpec(
                            node_name=node_name,
                            role=kind,  # type: ignore[arg-type]
                            version=k8s.k3s_version,
                            deploy_public_key=v[1],
                            server_url=f"https://{v[0]}:{k3s.API_PORT}" if v[0] else None,
                            labels=labels,
                            state_volume_id=v[2] or None,
                            gpu=gpu,
                        )
                    )
                )

            groups = [nodes_group.group_id]
            vm = JetstreamVM(
                node_name,
                JetstreamVMArgs(
                    role=f"k8s-{role}",
                    flavor=flavor,
                    image=cfg.image,
                    image_id=cfg.image_id,
                    shelved=cfg.shelved,
                    key_pair=cfg.key_pair,
                    network_id=args.network_id,
                    subnet_id=args.subnet_id,
                    security_group_ids=groups,
                    user_data=user_data,
                    # The first node's address is the stack's way in (SSH, the API); the hub's
                    # public name is on the load balancer.
                    floating_ip=entry,
                    data_volumes=[
                        DataVolume(
                            OSD_VOLUME,
                            k8s.ceph_volume_gb,
                            f"Ceph OSD of {node_name}: users' homes and shared data",
                        ),
                        DataVolume(
                            STATE_VOLUME,
                            STATE_VOLUME_GB,
                            f"k3s datastore (etcd) and Ceph mon store of {node_name}",
                        ),
                    ]
                    if osd
                    else [],
                    # A new k3s version or token must not replace every node at once (etcd and
                    # Ceph would go with them); upgrade nodes in place instead.
                    replace_on_user_data_change=False,
                    # An existing node waits for the previous node's readiness: a change of
                    # image, flavor or version rolls through the nodes one at a time (see
                    # steps). A new node waits for nothing: on the first `pulumi up` every node
                    # boots at once, and the joining ones wait for the first server themselves
                    # (k3s-install.sh.j2).
                    instance_depends_on=after if exists(node_name) else (),
                ),
                opts=child,
            )
            self.node_names.append(node_name)
            if osd:
                self.osd_volume_ids[node_name] = vm.volume_ids[OSD_VOLUME]
            return vm

        def exists(node_name: str) -> bool:
            return args.existing_nodes is None or node_name in args.existing_nodes

        # ServiceLB answers for the proxy's LoadBalancer service on the labelled nodes only:
        # the control plane, which the Octavia load balancer sends the hub's traffic to.
        core = {k3s.NODE_PURPOSE: "core", k3s.SERVICE_LB_LABEL: "true"}
        first = node(
            f"{name}-cp-0", "control-plane", k8s.control_plane_flavor, core, None, entry=True, osd=True
        )
        assert first.public_ip is not None
        entry_ip = first.public_ip

        def connection(vm: JetstreamVM) -> command.remote.ConnectionArgs:
            if vm is first:
                return command.remote.ConnectionArgs(
                    host=entry_ip,
                    user=DEFAULT_LOGIN_USER,
                    private_key=deploy_key.private_key_openssh,
                    dial_error_limit=DIAL_ERROR_LIMIT,
                    per_dial_timeout=PER_DIAL_TIMEOUT_S,
                )
            # Only the first node has a public address; reach the others through it.
            return command.remote.ConnectionArgs(
                host=vm.private_ip,
                user=DEFAULT_LOGIN_USER,
                private_key=deploy_key.private_key_openssh,
                proxy=command.remote.ProxyConnectionArgs(
                    host=entry_ip,
                    user=DEFAULT_LOGIN_USER,
                    private_key=deploy_key.private_key_openssh,
                    dial_error_limit=DIAL_ERROR_LIMIT,
                    per_dial_timeout=PER_DIAL_TIMEOUT_S,
                ),
                dial_error_limit=DIAL_ERROR_LIMIT,
                per_dial_timeout=PER_DIAL_TIMEOUT_S,
            )

        def steps(vm: JetstreamVM, node_name: str, kind: str, flavor: str, storage: bool) -> NodeSteps:
            """What puts a node's root-disk state back and proves it serves again: the join
            token and node password (gone with a re-imaged root disk), k3s at the stack's
            version, and the node Ready (and Ceph healthy) seen from the first node. Each runs
            again on the change that needs it; the next node's server, if it exists, waits for
            `ready`, and so does every other node's `ready`, which a node reaches only once the
            first server serves."""
            password = random.RandomPassword(
                f"{node_name}-node-password", length=48, special=False, opts=child
            )
            secrets: pulumi.Output[str] = pulumi.Output.concat(token.result, "\n", password.result, "\n")
            token_command = command.remote.Command(
                f"{node_name}-join-token",
                connection=connection(vm),
                create=k3s.render_install_token_script(),
                stdin=pulumi.Output.secret(secrets),  # type: ignore[arg-type]
                logging=command.remote.Logging.NONE,
                # A new server (new instance ID) or a re-imaged root disk (image) needs the token
                # again. The instance ID, the node's address and the first node's floating IP
                # are all it waits for: the installer on the node waits for the token, and
                # nothing waits for the volumes' attachment, so no depends_on on the VM.
                triggers=vm.root_disk,
                opts=pulumi.ResourceOptions(
                    parent=self, additional_secret_outputs=["stdin", "stdout", "stderr"]
                ),
            )
            version = command.remote.Command(
                f"{node_name}-k3s",
                connection=connection(vm),
                create=first.private_ip.apply(
                    lambda ip: k3s.render_k3s_upgrade_script(
                        k3s.K3sNodeSpec(
                            node_name=node_name,
                            role=kind,  # type: ignore[arg-type]
                            version=k8s.k3s_version,
                            deploy_public_key="",
                            server_url=f"https://{ip}:{k3s.API_PORT}" if vm is not first else None,
                        )
                    )
                ),
                logging=command.remote.Logging.STDOUT_AND_STDERR,
                # Nodes ignore changes to their user data; this is how a new k3sVersion reaches
                # them, and how a rebuilt node (booted with its original user data) catches up.
                triggers=[*vm.root_disk, k8s.k3s_version],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[token_command]),
            )
            ready = command.remote.Command(
                f"{node_name}-ready",
                connection=connection(first),
                create=k3s.render_node_ready_script(node_name, k8s.k3s_version, storage=storage),
                logging=command.remote.Logging.STDOUT_AND_STDERR,
                # The same changes that rebuild (image), resize (flavor) or upgrade (version) the
                # node run this again, so the next node waits for this one every time.
                triggers=[*vm.root_disk, flavor, k8s.k3s_version],
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[version] if vm is first else [version, first_steps.ready]
                ),
            )
            return NodeSteps(token_command, version, ready)

        first_steps = steps(first, f"{name}-cp-0", "server", k8s.control_plane_flavor, True)
        server_steps = [first_steps]
        servers = [first]
        server_names = [f"{name}-cp-0"]
        previous = first_steps.ready
        for i in range(1, k8s.control_plane_count):
            node_name = f"{name}-cp-{i}"
            vm = node(
                node_name,
                "control-plane",
                k8s.control_plane_flavor,
                core,
                first.private_ip,
                osd=True,
                after=[previous],
            )
            servers.append(vm)
            server_names.append(node_name)
            server_steps.append(steps(vm, node_name, "server", k8s.control_plane_flavor, True))
            previous = server_steps[-1].ready
        # Existing workers follow the control plane, in `lanes` parallel chains: worker i waits
        # for worker i - lanes. A worker is no quorum member, but each holds users' servers: at
        # most a tenth of them (one, up to 10 workers) is away at a time, which the
        # placeholder pods' headroom absorbs, and a large cluster is not rolled one node after
        # another for hours. New workers are created at once, whatever the lanes.
        workers = sizing.worker_count(cfg)
        lanes = worker_lanes(workers)
        worker_steps: list[NodeSteps] = []
        for i in range(workers):
            node_name = f"{name}-worker-{i}"
            vm = node(
                node_name,
                "worker",
                k8s.worker_flavor,
                {k3s.NODE_PURPOSE: "user"},
                first.private_ip,
                after=[worker_steps[i - lanes].ready if i >= lanes else previous],
            )
            worker_steps.append(steps(vm, node_name, "worker", k8s.worker_flavor, False))
            self.worker_removals.append(
                removal_step(vm, node_name, connection(first), k3s.render_node_drain_script(node_name), self)
            )
        # GPU workers: user nodes too (Z2JH's user pods require that label), tainted so that only
        # servers of GPU profiles, which tolerate the taint, run there; they roll in the same
        # lanes after the CPU workers.
        gpu_labels = {k3s.NODE_PURPOSE: "user", nvidia.GPU_NODE_LABEL[0]: nvidia.GPU_NODE_LABEL[1]}
        cpu_workers = len(worker_steps)
        for i in range(k8s.gpu_worker_count):
            node_name = f"{name}-gpu-{i}"
            j = cpu_workers + i
            vm = node(
                node_name,
                "gpu-worker",
                k8s.gpu_worker_flavor,
                gpu_labels,
                first.private_ip,
                after=[worker_steps[j - lanes].ready if j >= lanes else previous],
                gpu=True,
            )
            worker_steps.append(steps(vm, node_name, "worker", k8s.gpu_worker_flavor, False))
            self.worker_removals.append(
                removal_step(vm, node_name, connection(first), k3s.render_node_drain_script(node_name), self)
            )

        fetch = command.remote.Command(
            f"{name}-kubeconfig",
            connection=connection(first),
            create=k3s.render_fetch_kubeconfig_script(k8s.control_plane_count),
            logging=command.remote.Logging.NONE,
            # A rebuilt first node keeps its ID; k3s writes its admin kubeconfig again at start,
            # so the image is a trigger too and the provider gets the file the node now serves.
            triggers=first.root_disk,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[s.token for s in server_steps] + [s.ready for s in server_steps],
                additional_secret_outputs=["stdout", "stderr"],
            ),
        )
        workers_ready = command.remote.Command(
            f"{name}-workers-ready",
            connection=connection(first),
            create=k3s.render_wait_for_nodes_script(f"{k3s.NODE_PURPOSE}=user", len(worker_steps)),
            # Runs again when the worker count changes.
            triggers=[len(worker_steps)],
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[fetch, *(s.token for s in worker_steps), *(s.ready for s in worker_steps)],
                additional_secret_outputs=["stderr"],
            ),
        )
        self.ingress_ip, api_address = self._entry(
            name,
            cfg,
            args,
            web_group,
            list(zip(server_names, servers, strict=True)),
            api_cidrs if api_via_lb else [],
            api_after=[nodes_group],
        )
        self.admin_ip = entry_ip
        self.lifeline = first
        self.workers_ready = [workers_ready]
        self.node_ready = [s.ready for s in server_steps + worker_steps]
        # Through the load balancer the API answers while any control-plane node does; without
        # the listener it is the first node's. The certificate is checked against a name k3s
        # always puts in it, not the hub's name: a new hubHostname leaves the kubeconfig as it is.
        api_ip = api_address if api_address is not None else entry_ip
        return pulumi.Output.all(fetch.stdout, api_ip).apply(
            lambda v: k3s.rewrite_kubeconfig(v[0], v[1], k3s.API_SERVER_NAME)
        )

    def _entry(
        self,
        name: str,
        cfg: StackConfig,
        args: K8sClusterArgs,
        web_group: RoleSecurityGroup,
        servers: list[tuple[str, JetstreamVM]],
        api_cidrs: list[str],
        api_after: Sequence[pulumi.Resource] = (),
    ) -> tuple[pulumi.Output[str], pulumi.Output[str] | None]:
        """The hub's public entry point: an Octavia load balancer over the control-plane nodes,
        each checked by a health monitor, so the hub stays reachable when any one node is lost
        (rebuilt, resized, or gone). The floating IP and the DNS name are on its VIP port. Given
        `api_cidrs`, it also passes the Kubernetes API (6443) to the control plane, for those
        networks only (the listener's allowed CIDRs and the load balancer's group). Returns the
        floating IP's address, and the same address once the API's members are in place (after
        `api_after`, the nodes' group that lets the load balancer in), or None without the API:
        a cluster that gains the listener on a later `pulumi up` is reached through it only then."""
        child = pulumi.ResourceOptions(parent=self)
        balancer = openstack.loadbalancer.LoadBalancer(
            f"{name}-lb",
            name=f"{pulumi.get_stack()}-{name}-hub",
            description=f"{cfg.hub_fqdn}: JupyterHub's proxy on the control-plane nodes",
            vip_subnet_id=args.subnet_id,
            # 80 and 443 from anywhere, the API from the admin networks, nothing else.
            security_group_ids=[web_group.group_id],
            opts=child,
        )
        api = [k3s.API_PORT] if api_cidrs else []
        api_members: openstack.loadbalancer.Members | None = None
        for port in [*HUB_PORTS, *api]:
            listener = openstack.loadbalancer.Listener(
                f"{name}-lb-{port}",
                loadbalancer_id=balancer.id,
                protocol="TCP",
                protocol_port=port,
                # The proxy terminates TLS (and answers Let's Encrypt on 80), the API server its
                # own: pass bytes through.
                description=f"{cfg.hub_fqdn}:{port}",
                allowed_cidrs=api_cidrs if port in api else None,
                opts=child,
            )
            pool = openstack.loadbalancer.Pool(
                f"{name}-lb-{port}-pool",
                listener_id=listener.id,
                protocol="TCP",
                lb_method="ROUND_ROBIN",
                opts=child,
            )
            openstack.loadbalancer.Monitor(
                f"{name}-lb-{port}-monitor",
                pool_id=pool.id,
                type="TCP",
                delay=LB_MONITOR_DELAY_S,
                timeout=LB_MONITOR_TIMEOUT_S,
                max_retries=LB_MONITOR_RETRIES,
                opts=child,
            )
            members = openstack.loadbalancer.Members(
                f"{name}-lb-{port}-members",
                pool_id=pool.id,
                members=[
                    openstack.loadbalancer.MembersMemberArgs(
                        name=node_name, address=vm.private_ip, protocol_port=port, subnet_id=args.subnet_id
                    )
                    for node_name, vm in servers
                ],
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(api_after) if port in api else None),
            )
            if port in api:
                api_members = members
        address = openstack.networking.FloatingIp(
            f"{name}-hub-ip",
            pool=EXTERNAL_NETWORK,
            port_id=balancer.vip_port_id,
            description=f"{cfg.hub_fqdn} (load balancer)",
            # Explicit as well, so the dependency shows where the VIP port is not yet known.
            # The hub's address: protected and retained like a VM hub's (components/vm.py).
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[balancer], protect=True, retain_on_delete=True
            ),
        )
        a_record(f"{name}-dns", cfg.zone, cfg.hub_fqdn, address.address, parent=self)
        if api_members is None:
            return address.address, None
        return address.address, pulumi.Output.all(address.address, api_members.id).apply(lambda v: str(v[0]))

    # --- magnum ----------------------------------------------------------------------------

    def _magnum(
        self, name: str, cfg: StackConfig, k8s: K8sConfig, args: K8sClusterArgs
    ) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        template = openstack.containerinfra.get_cluster_template_output(
            name=k8s.magnum_template, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        workers = sizing.worker_count(cfg)
        maximum = k8s.max_worker_count or workers
        # The provider's documentation: a change of the cluster's `labels`, `flavor`,
        # `master_flavor` or `merge_labels` creates a new cluster, while a node group's
        # `min_node_count`, `max_node_count` and `node_count` update in place. So the cluster
        # keeps constant labels and a one-node default group (Jetstream2 cannot scale a node
        # group to zero), and the workers, with the autoscaler's bounds, are a node group.
        cluster = openstack.containerinfra.Cluster(
            f"{name}-cluster",
            name=f"{pulumi.get_stack()}-{name}",
            cluster_template_id=template.id,
            keypair=cfg.key_pair,
            master_count=k8s.control_plane_count,
            master_flavor=k8s.control_plane_flavor,
            flavor=k8s.control_plane_flavor,
            node_count=DEFAULT_GROUP_NODES,
            fixed_network=args.network_id,
            fixed_subnet=args.subnet_id,
            master_lb_enabled=k8s.control_plane_count > 1,
            floating_ip_enabled=False,
            merge_labels=True,
            labels={
                # Always on: the node group's bounds decide whether it scales.
                "auto_scaling_enabled": "true",
                "api_master_lb_allowed_cidrs": ",".join(cfg.admin_cidrs),
            },
            create_timeout=120,
            opts=child,
        )
        # A new flavor is a new node group (its name says the flavor, so the new group is
        # created before the old one is deleted and the cluster never has no workers). This
        # stack creates one node group: Jetstream2 does not allow creating them in parallel.
        workers_group = openstack.containerinfra.NodeGroup(
            f"{name}-workers",
            cluster_id=cluster.id,
            name=f"workers-{k8s.worker_flavor.replace('.', '-')}",
            role="worker",
            flavor_id=k8s.worker_flavor,
            node_count=workers,
            min_node_count=workers,
            max_node_count=maximum,
            opts=child,
        )
        groups: list[pulumi.Resource] = [workers_group]
        if k8s.gpu_worker_count:
            # GPU workers are a node group of their own, created after the CPU workers' (never
            # in parallel). A Magnum node group takes no Kubernetes taints through the provider:
            # the hub keeps CPU users off these nodes by a required node affinity on the flavor
            # (renderers.z2jh), and GPU servers are sent there by the same label.
            groups.append(
                openstack.containerinfra.NodeGroup(
                    f"{name}-gpu-workers",
                    cluster_id=cluster.id,
                    name=f"gpu-{k8s.gpu_worker_flavor.replace('.', '-')}",
                    role="worker",
                    flavor_id=k8s.gpu_worker_flavor,
                    node_count=k8s.gpu_worker_count,
                    min_node_count=k8s.gpu_worker_count,
                    max_node_count=k8s.gpu_worker_count,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[workers_group]),
                )
            )
        # The proxy's load balancer takes this address (loadBalancerIP), so the DNS name exists
        # before the cluster does.
        address = openstack.networking.FloatingIp(
            f"{name}-hub-ip",
            pool=EXTERNAL_NETWORK,
            description=f"{cfg.hub_fqdn} (JupyterHub proxy)",
            # The hub's address: protected and retained like a VM hub's (components/vm.py).
            opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True),
        )
        a_record(f"{name}-dns", cfg.zone, cfg.hub_fqdn, address.address, parent=self)
        self.ingress_ip = address.address
        self.admin_ip = None
        self.lifeline = cluster
        # Magnum reports a node group created once its nodes are up.
        self.workers_ready = groups
        return cluster.kubeconfig.apply(lambda kc: kc["raw_config"])
