"""The supervisor view: one static page, its script and its style (no build, no CDN).

The script polls ``/v1/summary`` every second with the session cookie the page's
``?token=`` login set, and renders queues, agents and live conversations with
``textContent`` only (customer-chosen names are never parsed as HTML).

A live conversation's Monitor button follows it (``/v1/desk/conversations/ID``, every
second): its lines, each marked with who saw it, and who is in it. From there the
supervisor whispers to its agents or writes to the customer too (a barge); those two
POSTs carry the cookie and the page's own header (gateway.admin.desk_api.page_action).
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
<table id="agents"><thead><tr><th>Agent</th><th>Shown as</th><th>State</th><th>Reason</th>
<th>Load</th><th>Protocol</th><th>Conversations</th></tr></thead><tbody></tbody></table>
<section><h2>Cluster <span id="node"></span></h2>
<table id="cluster"><thead><tr><th>Node</th><th>State</th><th>Customers</th><th>Agents</th>
<th>Conversations</th><th>Held</th><th>Waiting</th></tr></thead><tbody></tbody></table>
</section>
<section><h2>Live conversations</h2>
<table id="conversations"><thead><tr><th>Conversation</th><th>Customer</th><th>State</th>
<th>Queue</th><th>Agent</th><th>Protocol</th><th>Age (s)</th><th></th></tr></thead>
<tbody></tbody></table></section>
<section id="monitor" hidden><h2>Monitoring <span id="monitored"></span></h2>
<p>In it: <span id="participants">-</span> <span id="monitor-status"></span></p>
<ol id="lines"></ol>
<p><input id="line-text" type="text" size="60" maxlength="2000" aria-label="Text">
<button type="button" id="whisper">Whisper to the agent</button>
<button type="button" id="say">Say to the customer</button>
<button type="button" id="stop">Stop monitoring</button></p></section>
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
      ['name', 'name'], ['alias', 'alias'], ['state', 'state'], ['reason', 'reason'],
      ['load', 'load'], ['protocol', 'protocol'], ['conversations', 'conversations']]);
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
    document.querySelectorAll('#conversations tbody tr').forEach(function (tr) {
      const td = document.createElement('td');
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = 'Monitor';
      button.dataset.action = 'monitor';
      button.dataset.conversation = tr.dataset.conversation;
      td.appendChild(button);
      tr.appendChild(td);
    });
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

(function () {
  const INTERVAL_MS = 1000;
  let watched = null;
  let timer = null;

  function status(text) {
    document.getElementById('monitor-status').textContent = text;
  }

  function render(c) {
    document.getElementById('monitored').textContent = c.customer + ' (' + c.id + ')';
    const names = c.participants.map(function (p) { return p.alias + ' (' + p.role + ')'; });
    document.getElementById('participants').textContent =
      [c.agent || 'no agent'].concat(names).join(', ');
    const items = c.messages.map(function (m) {
      const li = document.createElement('li');
      li.dataset.audience = m.audience;
      li.dataset.from = m.from;
      const who = m.from === 'agent' && m.agent ? m.agent : m.from;
      const seen = m.audience === 'all' ? '' : ' [' + m.audience + ' only]';
      li.textContent = who + seen + ': ' + m.text;
      return li;
    });
    const list = document.getElementById('lines');
    list.replaceChildren.apply(list, items);
    document.getElementById('monitor').dataset.polls =
      String(Number(document.getElementById('monitor').dataset.polls || 0) + 1);
  }

  function follow() {
    if (watched === null) { return; }
    const id = watched;
    fetch('/v1/desk/conversations/' + encodeURIComponent(id),
          {credentials: 'same-origin', cache: 'no-store'})
      .then(function (r) { return r.json().then(function (b) { return [r.status, b]; }); })
      .then(function (answer) {
        if (id !== watched) { return; }
        if (answer[0] === 404) { status('(the conversation ended)'); watched = null; return; }
        if (answer[0] !== 200) { throw new Error(answer[1].error || 'HTTP ' + answer[0]); }
        render(answer[1]);
      })
      .catch(function (e) { status(String(e)); })
      .finally(function () { if (watched !== null) { timer = setTimeout(follow, INTERVAL_MS); } });
  }

  function monitor(id) {
    clearTimeout(timer);
    watched = id;
    document.getElementById('monitor').hidden = false;
    document.getElementById('lines').replaceChildren();
    status('');
    follow();
  }

  function send(action) {
    const input = document.getElementById('line-text');
    if (watched === null || !input.value) { return; }
    fetch('/v1/desk/conversations/' + encodeURIComponent(watched) + '/' + action, {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: {'Content-Type': 'application/json', 'X-Imgateway-Page': '1'},
      body: JSON.stringify({text: input.value})
    }).then(function (r) { return r.json().then(function (b) { return [r.status, b]; }); })
      .then(function (answer) {
        if (answer[0] !== 200) { throw new Error(answer[1].error || 'HTTP ' + answer[0]); }
        input.value = '';
        status(action === 'whisper' ? 'whispered' : 'said');
      })
      .catch(function (e) { status(String(e)); });
  }

  document.getElementById('conversations').addEventListener('click', function (e) {
    const target = e.target;
    if (target.dataset && target.dataset.action === 'monitor') {
      monitor(target.dataset.conversation);
    }
  });
  document.getElementById('whisper').addEventListener('click', function () { send('whisper'); });
  document.getElementById('say').addEventListener('click', function () { send('say'); });
  document.getElementById('stop').addEventListener('click', function () {
    watched = null;
    clearTimeout(timer);
    document.getElementById('monitor').hidden = true;
  });
})();
"""

STYLE = """body { font-family: sans-serif; margin: 1em 2em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: left; }
th { background: #eee; }
td[data-field="depth"], td[data-field="load"] { text-align: right; }
#lines li[data-audience="agents"] { color: #7a4b00; font-style: italic; }
#lines li[data-from="system"] { color: #555; }
"""

LOGIN = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>imgateway supervisor</title></head>
<body><p>Open this page as <code>/?token=TOKEN</code> with the admin token
(<code>[admin] token</code>, IMGATEWAY_ADMIN_TOKEN, or the file
<code>DATA_DIR/admin.token</code>).</p></body></html>
"""
