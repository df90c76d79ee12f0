/* imgateway agent console: JSON-IM/1 over WebSocket as an agent (client
   "imgateway-console"), with the typing, rich_text and receipts features.
   Offers with the customer's card, several conversations with their history,
   transfer, end, typing, receipts, presence with reasons; the service desk's tools
   and the messages customers left (console-desk.js). Every string from the network is shown as text, or as the
   markup subset's DOM nodes (markup.js). */
'use strict';
(function () {
  var VERSION = '1.0';
  var TYPING_EVERY_MS = 3000;
  var TYPING_IDLE_MS = 4000;

  var $ = function (id) { return document.getElementById(id); };
  var body = document.body;
  var ws = null;
  var welcomed = false;
  var features = {};
  var me = '';
  var nextId = 0;
  var chats = {};
  var order = [];
  var active = null;
  var offers = {};
  // Receipts for messages not acknowledged yet (delivery comes before the store's ack).
  var early = {};

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function status(text) { $('status').textContent = text; }

  function frame(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(obj)); return true; }
    status('Not connected.');
    return false;
  }

  function newId(prefix) { nextId += 1; return prefix + nextId; }

  // Roles in a conversation whose lines never reach the customer.
  var PRIVATE_ROLES = {monitor: true, consult: true};

  var desk = window.ImgatewayConsoleDesk({
    el: el, frame: frame, newId: newId, status: status,
    existing: function (id) { return chats[id] || null; },
    setRole: function (chat, role) { setRole(chat, role); },
    add: function (chat, entry) { add(chat, entry); },
    updateOwn: function (found) { updateOwn(found); },
    chatFor: function (f) { return chatFor(f); },
    activeId: function () { return active; },
  });

  // -- presence ----------------------------------------------------------------------

  function presenceOptions(reasons) {
    var select = $('presence');
    select.replaceChildren();
    select.appendChild(el('option', {value: 'available'}, 'Available'));
    select.appendChild(el('option', {value: 'away'}, 'Away'));
    reasons.forEach(function (reason) {
      var option = el('option', {value: 'away'}, 'Away: ' + reason);
      option.dataset.reason = reason;
      select.appendChild(option);
    });
    select.appendChild(el('option', {value: 'offline'}, 'Offline'));
    select.value = 'away';
  }

  $('presence').addEventListener('change', function (e) {
    var option = e.target.selectedOptions[0];
    var out = {type: 'presence', status: option.value};
    if (option.dataset.reason) { out.reason = option.dataset.reason; }
    frame(out);
    body.dataset.presence = option.value;
    status(option.value === 'available' ? 'Available: offers will come here.' : '');
  });

  fetch('/console.json', {cache: 'no-store'})
    .then(function (r) { return r.json(); })
    .then(function (c) {
      $('server').textContent = c.server ? '\u2014 ' + c.server : '';
      presenceOptions(Array.isArray(c.away_reasons) ? c.away_reasons.map(String) : []);
    })
    .catch(function () { presenceOptions([]); });

  // -- login -------------------------------------------------------------------------

  $('login').addEventListener('submit', function (e) {
    e.preventDefault();
    var user = $('user').value;
    var password = $('password').value;
    $('password').value = '';
    status('Logging in\u2026');
    var url = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/ws';
    ws = new WebSocket(url);
    ws.onopen = function () {
      ws.send(JSON.stringify({type: 'hello', protocol: 'jsonim/1', role: 'agent',
                              client: {name: 'imgateway-console', version: VERSION},
                              features: ['typing', 'rich_text', 'receipts'],
                              auth: {user: user, password: password}}));
      password = '';
    };
    ws.onmessage = function (m) {
      var f;
      try { f = JSON.parse(m.data); } catch (err) { return; }
      if (f && typeof f.type === 'string' && HANDLERS[f.type]) { HANDLERS[f.type](f); }
    };
    ws.onclose = function (c) {
      ws = null;
      body.dataset.closeCode = String(c.code);
      var was = welcomed;
      welcomed = false;
      if (was) {
        status('Disconnected' + (c.reason ? ': ' + c.reason : '') + '. Log in again.');
        body.dataset.phase = 'closed';
      } else if (!$('status').textContent || $('status').textContent === 'Logging in\u2026') {
        status('Login failed' + (c.reason ? ': ' + c.reason : '') + '.');
      }
      $('login').hidden = false;
      $('me').hidden = true;
      Object.keys(chats).forEach(function (id) { endChat(id, 'disconnected'); });
      Object.keys(offers).forEach(dropOffer);
      desk.closed();
    };
    me = user;
  });

  $('logout').addEventListener('click', function () { if (ws) { ws.close(1000); } });

  window.addEventListener('beforeunload', function (e) {
    if (Object.keys(chats).some(function (id) { return !chats[id].ended; })) {
      e.preventDefault();
      e.returnValue = '';
    }
  });

  // -- offers ------------------------------------------------------------------------

  function detail(dl, name, value) {
    if (value === undefined || value === null || value === '') { return; }
    dl.appendChild(el('dt', {}, name));
    dl.appendChild(el('dd', {}, String(value)));
  }

  function addOffer(f) {
    var card = f.customer || {};
    var li = el('li', {class: 'offer'});
    li.dataset.offer = f.offer;
    li.dataset.conversation = f.conversation;
    li.appendChild(el('strong', {}, 'Customer ' + String(card.alias || '')));
    var dl = el('dl');
    var client = card.client || {};
    detail(dl, 'Channel', card.protocol);
    detail(dl, 'Client', [client.name, client.version].filter(Boolean).join(' '));
    detail(dl, 'Topic', card.topic);
    Object.keys(card.identity || {}).forEach(function (k) { detail(dl, k, card.identity[k]); });
    li.appendChild(dl);
    desk.offerCard(li, f);
    var left = el('p', {class: 'expires'});
    li.appendChild(left);
    var accept = el('button', {type: 'button', class: 'primary accept'}, 'Accept');
    var reject = el('button', {type: 'button', class: 'reject'}, 'Reject');
    accept.addEventListener('click', function () { frame({type: 'accept', offer: f.offer}); });
    reject.addEventListener('click', function () {
      frame({type: 'reject', offer: f.offer});
      dropOffer(f.offer);
    });
    li.append(accept, ' ', reject);
    var until = Date.now() + 1000 * Number(f.expires_in_s || 0);
    function tick() { left.textContent = 'Expires in ' + Math.max(0, Math.round((until - Date.now()) / 1000)) + ' s'; }
    tick();
    offers[f.offer] = {li: li, timer: setInterval(tick, 1000), conversation: f.conversation};
    $('offers').appendChild(li);
    $('no-offers').hidden = true;
    accept.focus();
  }

  function dropOffer(id) {
    var offer = offers[id];
    if (!offer) { return; }
    clearInterval(offer.timer);
    offer.li.remove();
    delete offers[id];
    $('no-offers').hidden = Object.keys(offers).length > 0;
  }

  function notice(text) {
    $('notices').appendChild(el('li', {class: 'notice'}, text));
  }

  // -- conversations -----------------------------------------------------------------

  function own(entry) { return entry.from === 'agent' && !entry.history && !entry.other; }

  function lineText(entry) {
    var text = el('span', {class: 'text'});
    text.appendChild(entry.markup ? ImgatewayMarkup.render(entry.markup, document)
                                  : ImgatewayMarkup.plain(entry.text, document));
    return text;
  }

  function lineNode(entry, alias) {
    var li = el('li', {class: 'line from-' + entry.from + (entry.history ? ' history' : '') +
                               (entry.private ? ' private' : '')});
    li.dataset.from = entry.from;
    if (entry.private) { li.dataset.private = 'true'; }
    if (entry.msg) { li.dataset.msg = entry.msg; }
    if (entry.id) { li.dataset.id = entry.id; }
    var who = entry.from === 'agent' ? (entry.other ? entry.alias : entry.history ? 'Agent' : 'You')
            : entry.from === 'customer' ? alias : '';
    if (who && entry.private) { who += ' (agents only)'; }
    if (who) { li.appendChild(el('span', {class: 'who'}, who)); }
    li.appendChild(lineText(entry));
    if (own(entry)) {
      li.appendChild(el('span', {class: 'receipt'}));
      showReceipt(li, entry);
    }
    return li;
  }

  var RECEIPT_TEXT = {sending: 'Sending\u2026', sent: 'Sent', delivered: 'Delivered', read: 'Read', failed: 'Not sent'};

  function showReceipt(li, entry) {
    li.dataset.receipt = entry.receipt;
    li.querySelector('.receipt').textContent = entry.error ? 'Not sent: ' + entry.error : RECEIPT_TEXT[entry.receipt] || '';
  }

  function openChat(f) {
    var id = f.conversation;
    var alias = String((f.customer && f.customer.alias) || 'customer');
    var wasActive = active === id;
    if (chats[id]) { forget(id); }
    // The conversation's agent, or a colleague or supervisor beside it (consult, ...).
    var role = typeof f.role === 'string' ? f.role : 'agent';
    var chat = {id: id, alias: alias, role: role, entries: [], ended: false, unread: 0, typingSent: 0, typingTimer: null};
    var tab = el('button', {type: 'button', role: 'tab', id: 'tab-' + id, 'aria-controls': 'pane-' + id,
                            'aria-selected': 'false'}, alias);
    tab.dataset.conversation = id;
    var unread = el('span', {class: 'unread'});
    tab.appendChild(unread);
    var pane = el('section', {class: 'pane', role: 'tabpanel', id: 'pane-' + id, 'aria-labelledby': 'tab-' + id});
    pane.dataset.conversation = id;
    var head = el('div', {class: 'pane-head'});
    var title = el('h3', {}, 'Customer ' + alias + ' ');
    title.appendChild(el('small', {}, id));
    var agentAlias = f.agent && f.agent.alias ? String(f.agent.alias) : '';
    var state = el('span', {class: 'state'}, roleText(role, agentAlias));
    var end = role === 'agent' ? el('button', {type: 'button', class: 'end'}, 'End conversation')
                               : el('button', {type: 'button', class: 'end leave'}, 'Leave');
    var close = el('button', {type: 'button', class: 'close', hidden: ''}, 'Close');
    head.append(title, state, end, close);
    var log = el('ol', {class: 'log', role: 'log', 'aria-live': 'polite', tabindex: '0', 'aria-label': 'Messages with ' + alias});
    var typing = el('p', {class: 'typing', 'aria-live': 'polite'});
    var form = el('form', {class: 'composer'});
    var label = el('label', {class: 'sr-only', for: 'input-' + id}, 'Message to ' + alias);
    var input = el('textarea', {id: 'input-' + id, rows: '2'});
    var send = el('button', {type: 'submit'}, 'Send');
    form.append(label, input, send);
    var whisper = el('input', {type: 'checkbox', id: 'private-' + id, class: 'private-toggle'});
    var toggle = el('span', {class: 'private-choice'});
    toggle.append(whisper, el('label', {for: 'private-' + id}, 'Agents only'));
    toggle.hidden = PRIVATE_ROLES[role] === true;
    form.appendChild(toggle);
    var transfer = el('form', {class: 'transfer'});
    var kind = el('select', {'aria-label': 'Transfer to a queue or an agent'});
    kind.append(el('option', {value: 'queue'}, 'Queue'), el('option', {value: 'agent'}, 'Agent'));
    var target = el('input', {'aria-label': 'Queue or agent name', placeholder: 'name', required: ''});
    var go = el('button', {type: 'submit'}, 'Transfer');
    transfer.append(el('span', {}, 'Transfer to'), kind, target, go);
    if (role !== 'agent') { transfer.hidden = true; }
    chat.log = log; chat.pane = pane;
    pane.append(head, log, typing, form, transfer, desk.tools(chat, f));
    chat.tab = tab; chat.unreadMark = unread; chat.typing = typing;
    chat.input = input; chat.form = form; chat.transfer = transfer; chat.state = state;
    chat.endButton = end; chat.closeButton = close; chat.whisper = whisper;
    chat.whisperChoice = toggle; chat.agentAlias = agentAlias;
    pane.dataset.role = role;
    chats[id] = chat;
    order.push(id);
    (f.history || []).forEach(function (h) {
      add(chat, {from: h.from === 'customer' ? 'customer' : h.from === 'agent' ? 'agent' : 'system',
                 text: String(h.text || ''), history: true});
    });
    tab.addEventListener('click', function () { select(id); });
    end.addEventListener('click', function () {
      frame(role === 'agent' ? {type: 'end', conversation: id} : {type: 'leave', conversation: id});
    });
    close.addEventListener('click', function () { forget(id); });
    form.addEventListener('submit', function (e) { e.preventDefault(); say(chat); });
    input.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
    });
    input.addEventListener('input', function () { typingNow(chat); });
    transfer.addEventListener('submit', function (e) {
      e.preventDefault();
      var to = {};
      to[kind.value] = target.value.trim();
      frame({type: 'transfer', conversation: id, to: to, id: newId('t')});
    });
    $('tabs').appendChild(tab);
    $('panes').appendChild(pane);
    $('no-chats').hidden = true;
    if (wasActive || !active || !chats[active] || chats[active].ended) { select(id); } else { pane.hidden = true; }
  }

  function roleText(role, agentAlias) {
    return role === 'agent' ? 'connected' : role + (agentAlias ? ' (agent ' + agentAlias + ')' : '');
  }

  /* A supervisor's role changed (a monitor barged in): its lines now reach the customer. */
  function setRole(chat, role) {
    chat.role = role;
    chat.pane.dataset.role = role;
    if (!chat.ended) { chat.state.textContent = roleText(role, chat.agentAlias); }
    chat.whisperChoice.hidden = PRIVATE_ROLES[role] === true;
    if (chat.bargeButton && role !== 'monitor') { chat.bargeButton.remove(); chat.bargeButton = null; }
  }

  /* The conversation a frame names; a pane for it if there is none (a wrap-up owed). */
  function chatFor(f) {
    if (!chats[f.conversation]) {
      openChat({conversation: f.conversation, customer: f.customer});
      endChat(f.conversation, 'ended');
    }
    return chats[f.conversation];
  }

  function select(id) {
    active = id;
    Object.keys(chats).forEach(function (other) {
      var chat = chats[other];
      chat.pane.hidden = other !== id;
      chat.tab.setAttribute('aria-selected', String(other === id));
    });
    var chat = chats[id];
    chat.unread = 0;
    chat.unreadMark.textContent = '';
    markRead(chat);
    if (!chat.ended) { chat.input.focus(); }
  }

  function forget(id) {
    var chat = chats[id];
    if (!chat) { return; }
    if (chat.wrapup) { clearInterval(chat.wrapup.timer); }
    chat.tab.remove();
    chat.pane.remove();
    delete chats[id];
    order = order.filter(function (x) { return x !== id; });
    $('no-chats').hidden = order.length > 0;
    if (active === id) { active = null; if (order.length) { select(order[order.length - 1]); } }
  }

  function add(chat, entry) {
    chat.entries.push(entry);
    chat.log.appendChild(lineNode(entry, chat.alias));
    chat.log.scrollTop = chat.log.scrollHeight;
  }

  function ownEntry(key, value) {
    var ids = Object.keys(chats);
    for (var i = 0; i < ids.length; i++) {
      var entries = chats[ids[i]].entries;
      for (var j = entries.length - 1; j >= 0; j--) {
        if (own(entries[j]) && entries[j][key] === value) {
          return {chat: chats[ids[i]], entry: entries[j]};
        }
      }
    }
    return null;
  }

  function updateOwn(found) {
    var li = found.chat.log.querySelector('li[data-id="' + CSS.escape(found.entry.id) + '"]');
    if (li) {
      if (found.entry.msg) { li.dataset.msg = found.entry.msg; }
      if (found.entry.canned) { li.querySelector('.text').replaceWith(lineText(found.entry)); }
      showReceipt(li, found.entry);
    }
  }

  function endChat(id, reason) {
    var chat = chats[id];
    if (!chat || chat.ended) { return; }
    chat.ended = true;
    chat.state.textContent = 'ended (' + reason + ')';
    chat.pane.dataset.ended = reason;
    chat.form.hidden = true;
    chat.transfer.hidden = true;
    chat.endButton.hidden = true;
    chat.closeButton.hidden = false;
    chat.typing.textContent = '';
    desk.ended(chat);
  }

  function markRead(chat) {
    if (!features.receipts || chat.role !== 'agent' || chat.id !== active ||
        document.visibilityState !== 'visible') { return; }
    chat.entries.forEach(function (entry) {
      if (entry.from === 'customer' && entry.msg && entry.reported !== 'read') {
        if (frame({type: 'receipt', conversation: chat.id, msg: entry.msg, state: 'read'})) {
          entry.reported = 'read';
        }
      }
    });
  }

  document.addEventListener('visibilitychange', function () { if (active && chats[active]) { markRead(chats[active]); } });

  function say(chat) {
    var text = chat.input.value;
    if (!text.trim() || chat.ended) { return; }
    chat.input.value = '';
    var name = desk.cannedTyped(text);
    if (name) { desk.sendCanned(chat, name); return; }
    var id = newId('a');
    var entry = {from: 'agent', id: id, text: text, receipt: 'sending'};
    var out = {type: 'message', conversation: chat.id, id: id, text: text};
    if (features.rich_text) {
      out = {type: 'message', conversation: chat.id, id: id, markup: text};
      entry.markup = text;
    }
    // A whisper: to the other agents in the conversation, never the customer.
    if (chat.whisper.checked || PRIVATE_ROLES[chat.role]) { entry.private = true; }
    if (chat.whisper.checked) { out.private = true; }
    add(chat, entry);
    clearTimeout(chat.typingTimer);
    chat.typingSent = 0;
    if (!frame(out)) { entry.receipt = 'failed'; updateOwn({chat: chat, entry: entry}); }
  }

  function typingNow(chat) {
    if (!features.typing || chat.ended || chat.role !== 'agent' || chat.whisper.checked) { return; }
    var now = Date.now();
    if (now - chat.typingSent > TYPING_EVERY_MS) {
      chat.typingSent = now;
      frame({type: 'typing', conversation: chat.id, state: 'active'});
    }
    clearTimeout(chat.typingTimer);
    chat.typingTimer = setTimeout(function () {
      chat.typingSent = 0;
      if (!chat.ended) { frame({type: 'typing', conversation: chat.id, state: 'paused'}); }
    }, TYPING_IDLE_MS);
  }

  // -- frames from the gateway -------------------------------------------------------

  var HANDLERS = {
    welcome: function (f) {
      welcomed = true;
      features = {};
      (f.features || []).forEach(function (name) { features[name] = true; });
      $('login').hidden = true;
      $('desk').hidden = false;
      $('me').hidden = false;
      $('who').textContent = me;
      $('presence').value = 'away';
      body.dataset.presence = 'away';
      body.dataset.phase = 'desk';
      status('Logged in. Choose Available to take chats.');
      desk.welcome();
    },
    offer: addOffer,
    revoked: function (f) {
      if (desk.revoked(f)) { return; }
      var offer = offers[f.offer];
      if (offer) { notice('An offer was withdrawn (' + String(f.reason) + ').'); }
      dropOffer(f.offer);
    },
    connected: function (f) {
      Object.keys(offers).forEach(function (id) {
        if (offers[id].conversation === f.conversation) { dropOffer(id); }
      });
      openChat(f);
    },
    message: function (f) {
      var chat = f.conversation ? chats[f.conversation] : null;
      if (!chat) { notice(String(f.text || '')); return; }
      var entry = {from: f.from === 'customer' ? 'customer' : 'system', text: String(f.text || ''), msg: f.msg};
      // Another agent's line (a colleague, a supervisor), maybe to agents only.
      if (f.from === 'agent') {
        entry = {from: 'agent', other: true, alias: String(f.alias || 'Agent'), text: entry.text,
                 msg: f.msg, private: f.private === true};
      }
      if (typeof f.markup === 'string' && features.rich_text) { entry.markup = f.markup; }
      chat.typing.textContent = '';
      add(chat, entry);
      if (entry.from === 'customer' && features.receipts && chat.role === 'agent') {
        frame({type: 'receipt', conversation: chat.id, msg: f.msg, state: 'delivered'});
      }
      if (chat.id === active) { markRead(chat); } else {
        chat.unread += 1;
        chat.unreadMark.textContent = '(' + chat.unread + ')';
      }
    },
    typing: function (f) {
      var chat = chats[f.conversation];
      if (chat) { chat.typing.textContent = f.state === 'active' ? chat.alias + ' is typing\u2026' : ''; }
    },
    ack: function (f) {
      var found = ownEntry('id', f.id);
      if (found) {
        found.entry.msg = f.msg;
        // A canned response's ack carries the text sent, the names filled in.
        if (found.entry.canned && typeof f.text === 'string') { found.entry.text = f.text; }
        if (found.entry.receipt === 'sending') { found.entry.receipt = 'sent'; }
        // The customer may have it before the store does: its receipt came first.
        if (early[f.msg]) { found.entry.receipt = early[f.msg]; delete early[f.msg]; }
        updateOwn(found);
      }
    },
    receipt: function (f) {
      var found = ownEntry('msg', f.msg);
      if (!found) {
        if (early[f.msg] !== 'read') { early[f.msg] = f.state === 'read' ? 'read' : 'delivered'; }
      } else if (f.state === 'read' || found.entry.receipt !== 'read') {
        found.entry.receipt = f.state === 'read' ? 'read' : 'delivered';
        updateOwn(found);
      }
    },
    ended: function (f) {
      endChat(f.conversation, String(f.reason));
    },
    result: function (f) { desk.answered(f); },
    wrap_up: function (f) { if (typeof f.conversation === 'string') { desk.wrapUp(f); } },
    task: function (f) { desk.task(f); },
    error: function (f) {
      if (desk.answered(f)) { return; }
      var found = f.id ? ownEntry('id', f.id) : null;
      if (found) {
        found.entry.receipt = 'failed';
        found.entry.error = String(f.text || f.code);
        updateOwn(found);
      } else {
        status(String(f.code) + ': ' + String(f.text || ''));
      }
    },
    ping: function (f) { frame(f.id === undefined ? {type: 'pong'} : {type: 'pong', id: f.id}); },
  };
})();
