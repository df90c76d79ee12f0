"""The gateway's own parts that own a configuration section (see :mod:`gateway.plugins`).

Protocol adapters register themselves from their own packages; these are the
services of ``gateway/`` and the firewall, which the composition root assembles.
"""

from __future__ import annotations

from firewall import settings as firewall_settings
from gateway.admin import settings as admin_settings
from gateway.bots import settings as bots_settings
from gateway.bots.service import faq_upstream
from gateway.cluster import settings as cluster_settings
from gateway.desk import settings as desk_settings
from gateway.plugins import Part
from gateway.store import settings as store_settings

admin = Part(name="admin", sections={"admin": admin_settings.parse})
# The [cluster] section: Redis, this node's name, timings, workers (docs/cluster.md).
cluster = Part(name="cluster", sections={"cluster": cluster_settings.parse})
bots = Part(name="bots", sections={"bots": bots_settings.parse}, upstreams=(faq_upstream,))
# The [desk] section: the service desk around conversations (gateway.desk).
desk = Part(name="desk", sections={"desk": desk_settings.parse})
firewall = Part(name="firewall", sections={"firewall": firewall_settings.parse})
# The [store] section: backend, DSN and retention_days (gateway.store.retention).
store = Part(name="store", sections={"store": store_settings.parse})
