#!/bin/sh
# Start-up of the kamailio container (compose profile `cluster`): render kamailio.cfg and
# dispatcher.list the way `hotline cluster up` does, for the nodes in HOTLINE_CLUSTER_NODES
# (comma-separated addresses, node1 first), then run Kamailio in the foreground.
set -eu

conf=$(python3 - <<'PY'
import os

from call_router.settings import Settings
from hotline.cluster import kamailio
from hotline.cluster.topology import NodeSpec, cluster_dir

settings = Settings()
addresses = [a.strip() for a in os.environ["HOTLINE_CLUSTER_NODES"].split(",") if a.strip()]
nodes = [
    NodeSpec(i, f"node{i}", address, cluster_dir(settings) / f"node{i}",
             {"sip_port": str(settings.sip_port)})
    for i, address in enumerate(addresses, start=1)
]
path = kamailio.write_config(settings, nodes)
kamailio.check_config(settings)
print(path)
PY
)
echo "hotline-kamailio: $conf"
exec kamailio -DD -E -Y "$(dirname "$conf")" -f "$conf"
