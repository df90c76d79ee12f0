"""The supervisor view: one static page, its script and its style (no build, no CDN).

The script polls ``/v1/summary`` every second with the session cookie the page's
``?token=`` login set, and renders queues, agents and live conversations with
``textContent`` only (customer-chosen names are never parsed as HTML).
"""

from __future__ import annotations

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>imgateway supervisor</title>
<link rel="stylesheet" href="/supervisor.css">
<script src="/supervisor.js" defer></script>
</head>
<body>
<header><h1>imgateway supervisor <span id="server"></span></h1>
<p>Updated <span id="updated">never</span> <span id="status"></span></p></header>
<section><h2>Queues</h2>
<table id="queues"><thead><tr><th>Queue</th><th>Waiting</th><th>Oldest wait (s)</th>
<th>Estimate (s)</th><th>With agents</th></tr></thead><tbody></tbody></table></section>
<section><h2>Agents</h2>
<table id="agents"><thead><tr><th>Agent</th><th>Shown as</th><th>State</th><th>Load</th>
<th>Protocol</th><th>Conversations</th></tr></thead><tbody></tbody></table></section>
<section><h2>Cluster <span id="node"></span></h2>
<table id="cluster"><thead><tr><th>Node</th><th>State</th><th>Customers</th><th>Agents</th>
<th>Conversations</th><th>Held</th><th>Waiting</th></tr></thead><tbody></tbody></table>
</section>
<section><h2>Live conversations</h2>
<table id="conversations"><thead><tr><th>Conversation</th><th>Customer</th><th>State</th>
<th>Queue</th><th>Agent</th><th>Protocol</th><th>Age (s)</th></tr></thead>
<tbody></tbody></table></section>
</body>
</html>
"""

SCRIPT = r"""'use strict';
(function () {
  const INTERVAL_MS = 1000;

  function cell(row, field, value) {
    const td = document.createElement('td');
    td.dataset.field = field;
    td.textContent = value === null || value === undefined ? '-' : String(value);
    row.appendChild(td);
  }

  function fill(tableId, items, key, fields) {
    const body = document.querySelector('#' + tableId + ' tbody');
    const rows = items.map(function (item) {
      const tr = document.createElement('tr');
      tr.dataset[key] = item[fields[0][1]];
      fields.forEach(function (f) {
        const v = item[f[1]];
        cell(tr, f[0], Array.isArray(v) ? v.join(' ') : v);
      });
      return tr;
    });
    body.replaceChildren.apply(body, rows);
  }

  function render(s) {
    document.getElementById('server').textContent = s.server;
    fill('queues', s.queues, 'queue', [
      ['name', 'name'], ['depth', 'depth'], ['oldest_wait', 'oldest_wait_s'],
      ['eta', 'eta_s'], ['active', 'active']]);
    fill('agents', s.agents, 'agent', [
      ['name', 'name'], ['alias', 'alias'], ['state', 'state'], ['load', 'load'],
      ['protocol', 'protocol'], ['conversations', 'conversations']]);
    if (s.cluster) {
      fill('cluster', s.cluster.nodes, 'node', [
        ['node', 'node'], ['state', 'state'], ['customers', 'customers'], ['agents', 'agents'],
        ['conversations', 'conversations'], ['held', 'held'], ['waiting', 'waiting']]);
      document.getElementById('node').textContent = s.cluster.clustered
        ? '(this page: ' + s.cluster.node + (s.cluster.redis ? '' : '; redis NOT reachable') + ')'
        : '(one node)';
    }
    fill('conversations', s.conversations, 'conversation', [
      ['id', 'id'], ['customer', 'customer'], ['state', 'state'], ['queue', 'queue'],
      ['agent', 'agent'], ['protocol', 'protocol'], ['age', 'age_s']]);
    document.getElementById('updated').textContent = new Date().toISOString();
    document.getElementById('status').textContent = s.shutting_down ? '(shutting down)' : '';
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  }

  function poll() {
    fetch('/v1/summary', {credentials: 'same-origin', cache: 'no-store'})
      .then(function (r) {
        if (!r.ok) { throw new Error('HTTP ' + r.status); }
        return r.json();
      })
      .then(render)
      .catch(function (e) { document.getElementById('status').textContent = String(e); })
      .finally(function () { setTimeout(poll, INTERVAL_MS); });
  }

  poll();
})();
"""

STYLE = """body { font-family: sans-serif; margin: 1em 2em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: left; }
th { background: #eee; }
td[data-field="depth"], td[data-field="load"] { text-align: right; }
"""

LOGIN = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>imgateway supervisor</title></head>
<body><p>Open this page as <code>/?token=TOKEN</code> with the admin token
(<code>[admin] token</code>, IMGATEWAY_ADMIN_TOKEN, or the file
<code>DATA_DIR/admin.token</code>).</p></body></html>
"""
