/* imgateway chat widget: one script tag on any page.

     <script src="https://chat.example.com/widget.js" defer
             data-gateway="wss://chat.example.com/ws" data-title="Chat with us"></script>

   It speaks JSON-IM/1 over WebSocket as a customer (client "webchat"), with the typing,
   rich_text and receipts features. Its elements live in a shadow root, so that the
   page's styles and its own do not meet. The conversation (resume token and the lines
   shown) is kept in sessionStorage: a reload or a network drop resumes it. The
   customer token the gateway gives is kept in localStorage (unless data-remember="off"),
   so that a returning customer is recognised and gets the answers to messages it left;
   a site whose users are signed in may vouch for them instead (data-identity with
   data-identity-signature, signed by its backend). Every string from the network is
   shown as text, or as the markup subset's DOM nodes. */
'use strict';
(function () {
  var VERSION = '1.0';
  var MAX_KEPT = 200;
  var RETRY_MAX_MS = 30000;
  var TYPING_EVERY_MS = 3000;
  var TYPING_IDLE_MS = 4000;
  // Closes after which trying again cannot help: the page or its origin was refused.
  var FINAL_CODES = {1003: true, 1008: true};

  var script = document.currentScript;
  if (!script || document.querySelector('[data-imgateway-chat]')) { return; }
  var src = new URL(script.src, document.baseURI);
  var gateway = script.dataset.gateway ||
    (src.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + src.host + '/ws';
  var title = script.dataset.title || 'Chat with us';
  var storeKey = 'imgateway-chat:' + gateway;
  var remember = script.dataset.remember !== 'off';
  var customerKey = 'imgateway-customer:' + gateway;
  var identity = siteIdentity(script.dataset.identity);
  var identitySignature = script.dataset.identitySignature || null;

  var state = load();
  var ws = null;
  var welcomed = false;
  var features = {};
  var retryMs = 1000;
  var retryTimer = null;
  var nextId = 0;
  var lastTypingSent = 0;
  var typingTimer = null;
  var peerTypingTimer = null;
  var agentAlias = null;
  var outbox = [];
  // Agent messages delivered on this connection: the only ones it may send receipts for.
  var receivedHere = {};
  // Receipts for messages not acknowledged yet (delivery comes before the store's ack).
  var early = {};

  function load() {
    var empty = {resume: null, conversation: null, open: false, log: [], status: ''};
    try {
      var raw = window.sessionStorage.getItem(storeKey);
      var kept = raw ? JSON.parse(raw) : null;
      return kept && Array.isArray(kept.log) ? kept : empty;
    } catch (e) {
      return empty;
    }
  }

  /* The signed-in user the page names (a JSON object of strings), or null. */
  function siteIdentity(text) {
    if (!text) { return null; }
    try {
      var value = JSON.parse(text);
      return value && typeof value === 'object' && !Array.isArray(value) ? value : null;
    } catch (e) {
      return null;
    }
  }

  function customerToken() {
    if (!remember) { return null; }
    try { return window.localStorage.getItem(customerKey); } catch (e) { return null; }
  }

  function keepCustomerToken(token) {
    if (!remember || typeof token !== 'string' || !token) { return; }
    try { window.localStorage.setItem(customerKey, token); } catch (e) { /* full or disabled */ }
  }

  function save() {
    state.log = state.log.slice(-MAX_KEPT);
    try { window.sessionStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) { /* full or disabled */ }
  }

  // -- the elements -----------------------------------------------------------------

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  var host = el('div', {'data-imgateway-chat': ''});
  var root = host.attachShadow({mode: 'open'});
  var style = el('link', {rel: 'stylesheet', href: new URL('widget.css', src).href});
  var launcher = el('button', {type: 'button', class: 'launcher', 'aria-expanded': 'false',
                               'aria-controls': 'panel'}, title);
  var panel = el('section', {id: 'panel', class: 'panel', role: 'dialog', 'aria-label': title});
  var header = el('header', {class: 'header'});
  var heading = el('h2', {class: 'title'}, title);
  var endButton = el('button', {type: 'button', class: 'end'}, 'End chat');
  var closeButton = el('button', {type: 'button', class: 'close', 'aria-label': 'Minimize chat'}, '\u2013');
  var status = el('p', {class: 'status', role: 'status', 'aria-live': 'polite'});
  var log = el('ol', {class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages', tabindex: '0'});
  var choices = el('div', {class: 'choices', role: 'group', 'aria-label': 'Answers to choose from'});
  var typing = el('p', {class: 'typing', 'aria-live': 'polite'});
  var composer = el('form', {class: 'composer'});
  var label = el('label', {for: 'input', class: 'sr-only'}, 'Your message');
  var input = el('textarea', {id: 'input', rows: '2', placeholder: 'Write a message\u2026', autocomplete: 'off'});
  var send = el('button', {type: 'submit', class: 'send'}, 'Send');
  var ended = el('div', {class: 'ended'});
  var endedText = el('p', {}, 'The conversation has ended.');
  var restart = el('button', {type: 'button', class: 'restart'}, 'Start a new chat');
  header.append(heading, endButton, closeButton);
  composer.append(label, input, send);
  ended.append(endedText, restart);
  panel.append(header, status, log, choices, typing, composer, ended);
  root.append(style, launcher, panel);
  panel.hidden = true;
  ended.hidden = true;
  // A script in <head> without defer runs before there is a body to add to.
  if (document.body) {
    document.body.appendChild(host);
  } else {
    document.addEventListener('DOMContentLoaded', function () { document.body.appendChild(host); });
  }

  function setPhase(phase) { host.dataset.phase = phase; }

  function setStatus(text) {
    status.textContent = text;
    state.status = text;
  }

  function entryNode(entry) {
    var li = el('li', {class: 'line from-' + entry.from});
    li.dataset.from = entry.from;
    if (entry.msg) { li.dataset.msg = entry.msg; }
    if (entry.id) { li.dataset.id = entry.id; }
    var who = entry.from === 'customer' ? 'You' : entry.from === 'agent' ? (entry.alias || 'Agent') : '';
    if (who) { li.appendChild(el('span', {class: 'who'}, who)); }
    var body = el('span', {class: 'text'});
    body.appendChild(entry.markup ? ImgatewayMarkup.render(entry.markup, document)
                                  : ImgatewayMarkup.plain(entry.text, document));
    li.appendChild(body);
    if (entry.from === 'customer') {
      li.appendChild(el('span', {class: 'receipt'}));
      showReceipt(li, entry);
    }
    return li;
  }

  var RECEIPT_TEXT = {sending: 'Sending\u2026', sent: 'Sent', delivered: 'Delivered', read: 'Read',
                      failed: 'Not sent'};

  function showReceipt(li, entry) {
    var mark = li.querySelector('.receipt');
    li.dataset.receipt = entry.receipt;
    mark.textContent = entry.error ? 'Not sent: ' + entry.error : RECEIPT_TEXT[entry.receipt] || '';
  }

  function add(entry) {
    state.log.push(entry);
    log.appendChild(entryNode(entry));
    log.scrollTop = log.scrollHeight;
    save();
  }

  function redraw() {
    log.replaceChildren.apply(log, state.log.map(entryNode));
    status.textContent = state.status || '';
    log.scrollTop = log.scrollHeight;
  }

  function ownEntry(key, value) {
    for (var i = state.log.length - 1; i >= 0; i--) {
      if (state.log[i].from === 'customer' && state.log[i][key] === value) { return state.log[i]; }
    }
    return null;
  }

  function updateOwn(entry) {
    var li = log.querySelector('li[data-id="' + CSS.escape(entry.id) + '"]');
    if (li) {
      if (entry.msg) { li.dataset.msg = entry.msg; }
      showReceipt(li, entry);
    }
    save();
  }

  function showChoices(list) {
    choices.replaceChildren();
    (list || []).forEach(function (choice) {
      var b = el('button', {type: 'button', class: 'choice'}, choice.label);
      b.dataset.value = choice.value;
      b.addEventListener('click', function () { say(choice.value, true); });
      choices.appendChild(b);
    });
    choices.hidden = !choices.children.length;
  }

  // -- the connection ----------------------------------------------------------------

  function frame(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(obj)); return true; }
    return false;
  }

  function connect() {
    if (ws) { return; }
    clearTimeout(retryTimer);
    retryTimer = null;
    welcomed = false;
    receivedHere = {};
    setPhase('connecting');
    if (!state.conversation) { setStatus('Connecting\u2026'); }
    ws = new WebSocket(gateway);
    ws.onopen = function () {
      var hello = {type: 'hello', protocol: 'jsonim/1', role: 'customer',
                   client: {name: 'webchat', version: VERSION},
                   features: ['typing', 'rich_text', 'receipts']};
      if (state.resume) { hello.resume = state.resume; }
      var token = customerToken();
      if (token) { hello.customer_token = token; }
      if (identity) {
        hello.identity = identity;
        if (identitySignature) { hello.identity_signature = identitySignature; }
      }
      frame(hello);
    };
    ws.onmessage = function (e) {
      var f;
      try { f = JSON.parse(e.data); } catch (err) { return; }
      if (f && typeof f.type === 'string' && HANDLERS[f.type]) { HANDLERS[f.type](f); }
    };
    ws.onclose = function (e) {
      ws = null;
      welcomed = false;
      host.dataset.closeCode = String(e.code);
      if (host.dataset.phase === 'ended') { return; }
      state.log.forEach(function (entry) {
        if (entry.from === 'customer' && entry.receipt === 'sending') {
          entry.receipt = 'failed';
          updateOwn(entry);
        }
      });
      if (FINAL_CODES[e.code]) {
        setPhase('refused');
        setStatus('The chat is not available here' + (e.reason ? ' (' + e.reason + ').' : '.'));
        return;
      }
      setPhase('reconnecting');
      setStatus('Connection lost; reconnecting\u2026');
      retryTimer = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    };
  }

  var HANDLERS = {
    welcome: function (f) {
      welcomed = true;
      retryMs = 1000;
      features = {};
      (f.features || []).forEach(function (name) { features[name] = true; });
      if (state.conversation && f.conversation !== state.conversation) {
        // The old conversation could not be taken back: this is a new one.
        state.log = [];
        state.status = '';
        redraw();
      }
      state.resume = f.resume || null;
      state.conversation = f.conversation || null;
      keepCustomerToken(f.customer_token);
      host.dataset.conversation = state.conversation || '';
      setPhase('open');
      // Where the conversation stands (queued, connected) is told again after welcome.
      setStatus('');
      save();
      outbox.splice(0).forEach(frame);
    },
    prompt: function (f) {
      add({from: 'system', text: String(f.text), prompt: true});
      setPhase('interview');
      showChoices(f.choices);
    },
    queued: function (f) {
      setPhase('queued');
      showChoices([]);
      // eta_s is null while no agent can serve the queue: no time is promised then.
      var wait = '';
      if (f.eta_s !== null && f.eta_s !== undefined) {
        wait = ' (about ' + Math.max(1, Math.round(Number(f.eta_s) / 60)) + ' min)';
      }
      setStatus('You are number ' + Number(f.position) + ' in the queue' + wait + '.');
      save();
    },
    connected: function (f) {
      setPhase('connected');
      showChoices([]);
      agentAlias = f.agent && typeof f.agent.alias === 'string' ? f.agent.alias : 'An agent';
      setStatus('You are chatting with ' + agentAlias + '.');
      state.alias = agentAlias;
      save();
    },
    message: function (f) {
      var entry = {from: f.from === 'agent' ? 'agent' : 'system', text: String(f.text || ''),
                   msg: f.msg, alias: state.alias || agentAlias};
      if (typeof f.markup === 'string' && features.rich_text) { entry.markup = f.markup; }
      if (entry.from === 'agent') { showTyping(false); }
      add(entry);
      if (entry.from === 'agent' && features.receipts && f.conversation) {
        receivedHere[f.msg] = true;
        frame({type: 'receipt', msg: f.msg, state: 'delivered'});
        entry.reported = 'delivered';
        markRead();
      }
    },
    typing: function (f) { showTyping(f.state === 'active'); },
    ack: function (f) {
      var entry = ownEntry('id', f.id);
      if (entry) {
        entry.msg = f.msg;
        if (entry.receipt === 'sending') { entry.receipt = 'sent'; }
        // The agent may have it before the store does: its receipt came first.
        if (early[f.msg]) { entry.receipt = early[f.msg]; delete early[f.msg]; }
        updateOwn(entry);
      }
    },
    receipt: function (f) {
      var entry = ownEntry('msg', f.msg);
      if (!entry) {
        if (early[f.msg] !== 'read') { early[f.msg] = f.state === 'read' ? 'read' : 'delivered'; }
      } else if (f.state === 'read' || entry.receipt !== 'read') {
        entry.receipt = f.state === 'read' ? 'read' : 'delivered';
        updateOwn(entry);
      }
    },
    error: function (f) {
      var entry = f.id ? ownEntry('id', f.id) : null;
      if (entry) {
        entry.receipt = 'failed';
        entry.error = String(f.text || f.code);
        updateOwn(entry);
      } else {
        add({from: 'system', text: String(f.text || f.code)});
      }
    },
    ended: function () {
      setPhase('ended');
      showChoices([]);
      showTyping(false);
      state.resume = null;
      state.conversation = null;
      setStatus('');
      save();
      ended.hidden = false;
      composer.hidden = true;
      endButton.hidden = true;
      if (ws) { ws.close(1000); }
    },
    ping: function (f) { frame(f.id === undefined ? {type: 'pong'} : {type: 'pong', id: f.id}); },
  };

  function showTyping(active) {
    clearTimeout(peerTypingTimer);
    typing.textContent = active ? (state.alias || agentAlias || 'The agent') + ' is typing\u2026' : '';
    if (active) { peerTypingTimer = setTimeout(function () { showTyping(false); }, 15000); }
  }

  function markRead() {
    if (panel.hidden || document.visibilityState !== 'visible' || !features.receipts) { return; }
    var changed = false;
    state.log.forEach(function (entry) {
      if (entry.from === 'agent' && receivedHere[entry.msg] && entry.reported !== 'read') {
        if (frame({type: 'receipt', msg: entry.msg, state: 'read'})) {
          entry.reported = 'read';
          changed = true;
        }
      }
    });
    if (changed) { save(); }
  }

  // -- what the customer does -------------------------------------------------------

  function say(text, answer) {
    if (!text.trim()) { return; }
    nextId += 1;
    var id = 'w' + Date.now().toString(36) + '-' + nextId;
    var entry = {from: 'customer', id: id, text: text, receipt: 'sending'};
    var out = {type: 'message', id: id, text: text};
    if (features.rich_text && !answer) {
      out = {type: 'message', id: id, markup: text};
      entry.markup = text;
    }
    add(entry);
    stopTyping();
    if (answer) { showChoices([]); }
    if (!welcomed || !frame(out)) { outbox.push(out); connect(); }
  }

  function stopTyping() {
    clearTimeout(typingTimer);
    typingTimer = null;
    if (lastTypingSent) {
      lastTypingSent = 0;
      if (features.typing && host.dataset.phase === 'connected') {
        frame({type: 'typing', state: 'paused'});
      }
    }
  }

  function open(show) {
    panel.hidden = !show;
    launcher.setAttribute('aria-expanded', String(show));
    state.open = show;
    save();
    if (show) {
      if (!ws && host.dataset.phase !== 'ended') { connect(); }
      input.focus();
      markRead();
    } else {
      launcher.focus();
    }
  }

  launcher.addEventListener('click', function () { open(panel.hidden); });
  closeButton.addEventListener('click', function () { open(false); });
  panel.addEventListener('keydown', function (e) { if (e.key === 'Escape') { open(false); } });
  endButton.addEventListener('click', function () {
    if (!frame({type: 'end'})) { HANDLERS.ended({}); }
  });
  restart.addEventListener('click', function () {
    state = {resume: null, conversation: null, open: true, log: [], status: ''};
    ended.hidden = true;
    composer.hidden = false;
    endButton.hidden = false;
    redraw();
    save();
    setPhase('idle');
    connect();
    input.focus();
  });
  composer.addEventListener('submit', function (e) {
    e.preventDefault();
    var text = input.value;
    input.value = '';
    say(text, host.dataset.phase === 'interview');
  });
  input.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); composer.requestSubmit(); }
  });
  input.addEventListener('input', function () {
    if (!features.typing || host.dataset.phase !== 'connected') { return; }
    var now = Date.now();
    if (now - lastTypingSent > TYPING_EVERY_MS) {
      lastTypingSent = now;
      frame({type: 'typing', state: 'active'});
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  });
  document.addEventListener('visibilitychange', markRead);

  // A conversation kept from before a reload (or a drop) is taken back at once.
  redraw();
  setPhase('idle');
  choices.hidden = true;
  if (state.resume) {
    if (state.open) { panel.hidden = false; launcher.setAttribute('aria-expanded', 'true'); }
    connect();
  }
})();
