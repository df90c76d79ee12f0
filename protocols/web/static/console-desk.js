/* imgateway agent console: the service desk's tools (docs/desk.md), speaking the
   JSON-IM desk frames: canned responses, private notes, the wrap-up after the end,
   the customer's earlier conversations, consult, conference and warm transfer, and
   the messages customers left (tasks: answer one, or give it back), and for
   supervisors the live conversations of their teams (monitor, barge in).
   Loaded before console.js, which calls ImgatewayConsoleDesk(api) once. Every string
   from the network is shown as text (textContent), never parsed as HTML. */
'use strict';
window.ImgatewayConsoleDesk = function (api) {
  var el = api.el;
  var pending = Object.create(null);  // request id -> {ok, fail}
  var canned = [];   // [{name, team, text}]
  var cannedPickers = [];

  // -- requests answered by result or error --------------------------------------------

  function request(out, ok, fail) {
    var id = api.newId('d');
    out.id = id;
    pending[id] = {ok: ok || function () {}, fail: fail || function (f) { api.status(errorText(f)); }};
    if (!api.frame(out)) { delete pending[id]; return false; }
    return true;
  }

  function errorText(f) { return String(f.code) + ': ' + String(f.text || ''); }

  function answered(f) {
    var waiting = f.id !== undefined ? pending[f.id] : undefined;
    if (!waiting) { return false; }
    delete pending[f.id];
    if (f.type === 'result') { waiting.ok(f); } else { waiting.fail(f); }
    return true;
  }

  function when(ts) {
    var date = new Date(Number(ts) * 1000);
    return isNaN(date.getTime()) ? '' : date.toLocaleString();
  }

  // -- canned responses ----------------------------------------------------------------

  function loadCanned() {
    request({type: 'canned_list'}, function (f) {
      canned = (Array.isArray(f.responses) ? f.responses : []).filter(function (c) {
        return c && typeof c.name === 'string';
      });
      refreshPickers();
    }, function () { canned = []; refreshPickers(); });
  }

  function refreshPickers() {
    // Pickers of closed conversations are gone from the page: dropped here.
    cannedPickers = cannedPickers.filter(function (select) { return select.isConnected; });
    cannedPickers.forEach(fillPicker);
  }

  function fillPicker(select) {
    select.replaceChildren(el('option', {value: ''}, canned.length ? 'Choose a response' : 'No canned responses'));
    canned.forEach(function (c) {
      var option = el('option', {value: c.name, title: String(c.text || '')},
                      c.name + (c.team ? ' (' + c.team + ')' : ''));
      select.appendChild(option);
    });
  }

  function sendCanned(chat, name) {
    if (!name || chat.ended) { return; }
    var id = api.newId('c');
    var entry = {from: 'agent', id: id, text: 'Canned response \u201c' + name + '\u201d\u2026',
                 receipt: 'sending', canned: name};
    api.add(chat, entry);
    if (!api.frame({type: 'canned', conversation: chat.id, name: name, id: id})) {
      entry.receipt = 'failed';
      api.updateOwn({chat: chat, entry: entry});
    }
  }

  /* "/NAME" typed alone in the message box sends the canned response NAME. */
  function cannedTyped(text) {
    var m = /^\/([a-z0-9][a-z0-9_.-]{0,63})$/.exec(text.trim());
    if (!m) { return null; }
    return canned.some(function (c) { return c.name === m[1]; }) ? m[1] : null;
  }

  // -- lines the desk adds to a conversation ---------------------------------------------

  function deskLine(chat, from, who, text, extra) {
    var li = el('li', {class: 'line desk-line from-' + from + (extra ? ' ' + extra : '')});
    li.dataset.from = from;
    if (extra === 'private' || from === 'note') { li.dataset.private = 'true'; }
    if (who) { li.appendChild(el('span', {class: 'who'}, who)); }
    li.appendChild(el('span', {class: 'text'}, text));
    var state = el('span', {class: 'receipt'});
    li.appendChild(state);
    chat.log.appendChild(li);
    chat.log.scrollTop = chat.log.scrollHeight;
    return {li: li, state: state};
  }

  function addNote(chat, text) {
    var line = deskLine(chat, 'note', 'Private note (agents only)', text);
    line.li.dataset.receipt = 'sending';
    line.state.textContent = 'Saving\u2026';
    var sent = request({type: 'note', conversation: chat.id, text: text}, function () {
      line.li.dataset.receipt = 'saved';
      line.state.textContent = 'Saved';
    }, function (f) {
      line.li.dataset.receipt = 'failed';
      line.state.textContent = 'Not saved: ' + String(f.text || f.code);
    });
    if (!sent) { line.li.dataset.receipt = 'failed'; line.state.textContent = 'Not saved'; }
  }

  // -- the customer's earlier conversations ------------------------------------------------

  function pastSummary(p) {
    return [when(p.started), p.topic ? 'topic ' + p.topic : '',
            p.disposition ? 'disposition ' + p.disposition : 'no disposition',
            p.agent ? 'with ' + p.agent : ''].filter(Boolean).join(' \u00b7 ');
  }

  function pastList(past, chat) {
    var ul = el('ul', {class: 'past-list'});
    past.forEach(function (p) {
      if (!p || typeof p !== 'object') { return; }
      var li = el('li', {class: 'past-item'});
      li.dataset.conversation = String(p.conversation || '');
      li.appendChild(el('span', {class: 'past-summary'}, pastSummary(p)));
      if (chat) {
        var show = el('button', {type: 'button', class: 'past-open'}, 'Transcript');
        show.setAttribute('aria-label', 'Transcript of the conversation of ' + when(p.started));
        show.addEventListener('click', function () { openPast(chat, li, String(p.conversation), show); });
        li.append(' ', show);
      }
      ul.appendChild(li);
    });
    return ul;
  }

  function openPast(chat, li, earlier, button) {
    button.disabled = true;
    request({type: 'history', conversation: chat.id, of: earlier}, function (f) {
      var box = el('div', {class: 'past-transcript'});
      var lines = el('ol', {'aria-label': 'Transcript of ' + earlier});
      (Array.isArray(f.messages) ? f.messages : []).forEach(function (m) {
        var who = m.from === 'customer' ? chat.alias : m.from === 'agent' ? 'Agent' : 'System';
        var line = el('li', {class: 'from-' + String(m.from) + (m.private ? ' private' : '')},
                      who + (m.private ? ' (agents only)' : '') + ': ' + String(m.text || ''));
        lines.appendChild(line);
      });
      box.appendChild(lines);
      (Array.isArray(f.wrap_ups) ? f.wrap_ups : []).forEach(function (w) {
        var tags = Array.isArray(w.tags) && w.tags.length ? '; tags ' + w.tags.join(', ') : '';
        box.appendChild(el('p', {class: 'past-wrapup'},
                           'Wrap-up: ' + String(w.disposition || 'none') + tags));
      });
      (Array.isArray(f.notes) ? f.notes : []).forEach(function (n) {
        box.appendChild(el('p', {class: 'past-note'}, 'Note: ' + String(n.text || '')));
      });
      li.appendChild(box);
      button.remove();
    }, function (f) {
      button.disabled = false;
      li.appendChild(el('p', {class: 'past-error'}, errorText(f)));
    });
  }

  /* The offer's card: a returning customer's summary (customer.history). */
  function offerCard(li, f) {
    var past = f.customer && Array.isArray(f.customer.history) ? f.customer.history : [];
    if (!past.length) { return; }
    var box = el('div', {class: 'offer-past'});
    box.appendChild(el('p', {}, 'Returning customer: ' + past.length + ' earlier conversation' + (past.length > 1 ? 's' : '')));
    box.appendChild(pastList(past, null));
    li.appendChild(box);
  }

  // -- a conversation's desk tools -----------------------------------------------------------

  function tools(chat, f) {
    var box = el('div', {class: 'desk-tools'});
    var past = Array.isArray(f.past) ? f.past : [];
    if (past.length) {
      var details = el('details', {class: 'past'});
      details.appendChild(el('summary', {}, 'Earlier conversations (' + past.length + ')'));
      details.appendChild(pastList(past, chat));
      box.appendChild(details);
    }

    // Canned responses: pick one and send it; the gateway fills in the names.
    var cannedForm = el('form', {class: 'canned'});
    var pickId = 'canned-' + chat.id;
    var pick = el('select', {id: pickId});
    fillPicker(pick);
    cannedPickers.push(pick);
    var sendIt = el('button', {type: 'submit'}, 'Send response');
    var reload = el('button', {type: 'button', class: 'canned-reload'}, 'Reload list');
    cannedForm.append(el('label', {for: pickId}, 'Canned response'), pick, sendIt, reload);
    cannedForm.addEventListener('submit', function (e) {
      e.preventDefault();
      sendCanned(chat, pick.value);
      pick.value = '';
    });
    reload.addEventListener('click', loadCanned);

    // A private note: stored with the conversation, never sent to the customer.
    var noteForm = el('form', {class: 'note'});
    var noteId = 'note-' + chat.id;
    var note = el('input', {id: noteId, maxlength: '2000', autocomplete: 'off'});
    noteForm.append(el('label', {for: noteId}, 'Private note'), note,
                    el('button', {type: 'submit'}, 'Add note'));
    noteForm.addEventListener('submit', function (e) {
      e.preventDefault();
      var text = note.value.trim();
      if (!text) { return; }
      note.value = '';
      addNote(chat, text);
    });

    // A colleague: consult privately, then hand over (warm transfer) or add in conference.
    var mate = el('form', {class: 'colleague'});
    var mateId = 'colleague-' + chat.id;
    var name = el('input', {id: mateId, required: '', autocomplete: 'off'});
    var words = el('input', {'aria-label': 'Message to the colleague, or the introduction', placeholder: 'message or introduction', autocomplete: 'off'});
    var consult = el('button', {type: 'submit', class: 'consult'}, 'Consult');
    var conference = el('button', {type: 'button', class: 'conference'}, 'Conference');
    var handover = el('button', {type: 'button', class: 'handover'}, 'Hand over');
    mate.append(el('label', {for: mateId}, 'Colleague'), name, words, consult, conference, handover);
    function colleague(kind) {
      var who = name.value.trim().replace(/^@/, '');
      if (!who) { name.focus(); return; }
      var text = words.value.trim();
      var out;
      if (kind === 'consult') {
        out = {type: 'consult', conversation: chat.id, agent: who};
        if (text) { out.text = text; }
      } else if (kind === 'conference') {
        out = {type: 'conference', conversation: chat.id, agent: who};
      } else {
        out = {type: 'transfer', conversation: chat.id, to: {agent: who}, warm: true};
        if (text) { out.introduction = text; }
      }
      request(out, function (r) {
        words.value = '';
        var said = kind === 'consult' ? 'You consult ' + who + ' (the customer does not see it).'
                 : kind === 'conference' ? who + ' joined the conversation.'
                 : 'You handed the conversation over to ' + who + '.';
        deskLine(chat, 'desk', '', said);
        if (kind === 'consult' && text) { deskLine(chat, 'agent', 'You (agents only)', text, 'private'); }
        // The introduction of a hand-over is a line the customer read.
        if (kind === 'handover' && text) { deskLine(chat, 'agent', 'You', text); }
      }, function (r) { deskLine(chat, 'desk', '', errorText(r), 'error'); });
    }
    mate.addEventListener('submit', function (e) { e.preventDefault(); colleague('consult'); });
    conference.addEventListener('click', function () { colleague('conference'); });
    handover.addEventListener('click', function () { colleague('handover'); });

    if (chat.role === 'agent') { box.append(cannedForm, mate); }
    box.appendChild(noteForm);
    // A monitoring supervisor may join visibly.
    if (chat.role === 'monitor') {
      var barge = el('button', {type: 'button', class: 'barge'}, 'Barge in');
      barge.addEventListener('click', function () { supervise('barge', chat.id); });
      box.appendChild(barge);
      chat.bargeButton = barge;
    }
    chat.deskTools = {box: box, live: [cannedForm, mate]};
    return box;
  }

  function ended(chat) {
    if (chat.deskTools) { chat.deskTools.live.forEach(function (n) { n.hidden = true; }); }
  }

  // -- wrap-up --------------------------------------------------------------------------------

  function wrapUp(f) {
    var chat = api.chatFor(f);
    if (chat.wrapup) { chat.wrapup.form.remove(); clearInterval(chat.wrapup.timer); }
    var required = f.required === true;
    var codes = (Array.isArray(f.dispositions) ? f.dispositions : []).map(String);
    var form = el('form', {class: 'wrapup', 'aria-labelledby': 'wrapup-title-' + chat.id});
    form.appendChild(el('h4', {id: 'wrapup-title-' + chat.id}, 'Wrap-up'));
    var due = el('p', {class: 'due', role: 'timer'});
    form.appendChild(due);
    var set = el('fieldset', {class: 'dispositions'});
    set.appendChild(el('legend', {}, 'Disposition' + (required ? ' (required)' : ' (optional)')));
    var choices = required ? codes : [''].concat(codes);
    choices.forEach(function (code, i) {
      var id = 'disp-' + chat.id + '-' + i;
      var radio = el('input', {type: 'radio', name: 'disp-' + chat.id, id: id, value: code});
      if (required) { radio.required = true; }
      if (!required && code === '') { radio.checked = true; }
      var label = el('label', {for: id}, code || 'None');
      set.append(el('span', {class: 'choice'}));
      set.lastChild.append(radio, label);
    });
    form.appendChild(set);
    var tagsId = 'wrapup-tags-' + chat.id;
    var tags = el('input', {id: tagsId, class: 'tags', autocomplete: 'off', placeholder: 'refund, vip'});
    var noteId = 'wrapup-note-' + chat.id;
    var note = el('textarea', {id: noteId, class: 'wrapup-note', rows: '2', maxlength: '2000'});
    form.append(el('label', {for: tagsId}, 'Tags (separated by commas or spaces)'), tags,
                el('label', {for: noteId}, 'Note (private)'), note);
    var save = el('button', {type: 'submit', class: 'primary'}, 'Save wrap-up');
    var said = el('p', {class: 'wrapup-state', role: 'status'});
    form.append(save, said);
    chat.pane.appendChild(form);
    chat.pane.dataset.wrapup = 'due';
    chat.closeButton.hidden = required;
    var until = Date.now() + 1000 * Number(f.timeout_s || 0);
    var state = {form: form, timer: null};
    chat.wrapup = state;
    function tick() {
      var left = Math.max(0, Math.round((until - Date.now()) / 1000));
      if (left > 0) {
        due.textContent = (required ? 'A disposition is required' : 'Wrap up') + ' within ' + left + ' s.';
        return;
      }
      clearInterval(state.timer);
      due.textContent = 'The wrap-up time is over.';
      chat.pane.dataset.wrapup = 'expired';
      save.disabled = true;
      chat.closeButton.hidden = false;
    }
    tick();
    state.timer = setInterval(tick, 1000);
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var picked = form.querySelector('input[type="radio"]:checked');
      var code = picked ? picked.value : '';
      if (required && !code) { said.textContent = 'Choose a disposition.'; return; }
      var out = {type: 'wrap_up', conversation: chat.id,
                 tags: tags.value.split(/[\s,]+/).filter(Boolean)};
      if (code) { out.disposition = code; }
      if (note.value.trim()) { out.note = note.value.trim(); }
      save.disabled = true;
      said.textContent = 'Saving\u2026';
      var sent = request(out, function (r) {
        clearInterval(state.timer);
        form.replaceChildren(el('h4', {}, 'Wrap-up'), el('p', {class: 'wrapup-state', role: 'status'},
          'Saved: ' + String(r.disposition || 'no disposition') +
          (Array.isArray(r.tags) && r.tags.length ? '; tags ' + r.tags.join(', ') : '') +
          (r.note ? '; note kept.' : '.')));
        chat.pane.dataset.wrapup = 'done';
        chat.closeButton.hidden = false;
        chat.closeButton.focus();
      }, function (r) {
        save.disabled = false;
        said.textContent = 'Not saved: ' + String(r.text || r.code);
      });
      if (!sent) { save.disabled = false; said.textContent = 'Not saved: not connected.'; }
    });
    if (chat.id === api.activeId()) { (set.querySelector('input') || tags).focus(); }
  }

  // -- messages customers left (tasks) ---------------------------------------------------

  var tasks = Object.create(null);  // task id -> {li, form, state}

  function byId(id) { return document.getElementById(id); }

  function showTasksEmpty() {
    byId('no-tasks').hidden = Object.keys(tasks).length > 0;
  }

  /* A task frame, or one entry of the tasks request's answer in the same shape. */
  function task(f) {
    var id = String(f.task || '');
    if (!id || tasks[id]) { return; }
    var card = f.customer || {};
    var name = card.identity && card.identity.name ? String(card.identity.name) : '';
    var li = el('li', {class: 'task'});
    li.dataset.task = id;
    li.dataset.state = 'assigned';
    li.appendChild(el('strong', {}, 'Message from ' + (name ? name + ' (' + String(card.alias || '') + ')'
                                                              : 'customer ' + String(card.alias || ''))));
    var dl = el('dl');
    [['Channel', card.protocol], ['Queue', f.queue], ['Left', when(f.received)]].forEach(function (d) {
      if (d[1] === undefined || d[1] === null || d[1] === '') { return; }
      dl.append(el('dt', {}, d[0]), el('dd', {}, String(d[1])));
    });
    li.appendChild(dl);
    li.appendChild(el('blockquote', {class: 'task-text'}, String(f.text || '')));
    var form = el('form', {class: 'task-reply'});
    var replyId = 'task-reply-' + id;
    var reply = el('textarea', {id: replyId, rows: '2', maxlength: '4000', required: ''});
    var send = el('button', {type: 'submit', class: 'primary'}, 'Send answer');
    var release = el('button', {type: 'button', class: 'release'}, 'Give back');
    form.append(el('label', {for: replyId}, 'Your answer'), reply, send, ' ', release);
    li.appendChild(form);
    var state = el('p', {class: 'task-state', role: 'status'});
    li.appendChild(state);
    var entry = {li: li, form: form, state: state};
    tasks[id] = entry;
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var text = reply.value.trim();
      if (!text) { reply.focus(); return; }
      send.disabled = release.disabled = true;
      state.textContent = 'Sending\u2026';
      var sent = request({type: 'task_reply', task: id, text: text}, function (r) {
        done(id, 'answered', r.reply_path
          ? 'Answered. The customer gets it when they come back.'
          : 'Answered. The customer left no way to reach them: the answer is kept for the record.');
      }, function (r) {
        send.disabled = release.disabled = false;
        state.textContent = 'Not sent: ' + String(r.text || r.code);
      });
      if (!sent) { send.disabled = release.disabled = false; state.textContent = 'Not sent: not connected.'; }
    });
    release.addEventListener('click', function () {
      send.disabled = release.disabled = true;
      var sent = request({type: 'task_release', task: id}, function () {
        drop(id);
        api.status('The message went back to the other agents.');
      }, function (r) {
        send.disabled = release.disabled = false;
        state.textContent = 'Not given back: ' + String(r.text || r.code);
      });
      if (!sent) { send.disabled = release.disabled = false; }
    });
    byId('tasks').appendChild(li);
    showTasksEmpty();
  }

  /* The task is over for this agent: its card says why, until dismissed. */
  function done(id, how, text) {
    var entry = tasks[id];
    if (!entry) { return; }
    entry.li.dataset.state = how;
    entry.form.remove();
    entry.state.textContent = text;
    var dismiss = el('button', {type: 'button', class: 'dismiss'}, 'Dismiss');
    dismiss.addEventListener('click', function () { drop(id); });
    entry.li.appendChild(dismiss);
    dismiss.focus();
  }

  function drop(id) {
    var entry = tasks[id];
    if (!entry) { return; }
    entry.li.remove();
    delete tasks[id];
    showTasksEmpty();
  }

  /* A revoked frame: true if it named one of the tasks (its time to answer is over). */
  function revoked(f) {
    var entry = tasks[String(f.offer)];
    if (!entry || entry.li.dataset.state !== 'assigned') { return false; }
    done(String(f.offer), 'withdrawn', 'Given to another agent: the time to answer is over (' + String(f.reason) + ').');
    return true;
  }

  function loadTasks() {
    request({type: 'tasks'}, function (f) {
      (Array.isArray(f.tasks) ? f.tasks : []).forEach(function (t) {
        if (!t || t.state !== 'assigned') { return; }
        task({task: t.id, queue: t.queue, text: t.text, received: t.received,
              customer: {alias: t.customer, protocol: t.protocol, identity: t.name ? {name: t.name} : {}}});
      });
    });
  }

  // -- supervision: only a supervisor's live request is answered ---------------------------

  var LIVE_EVERY_MS = 5000;
  var liveTimer = null;

  function loadLive() {
    request({type: 'live'}, function (f) {
      byId('live').hidden = false;
      showLive(Array.isArray(f.conversations) ? f.conversations : []);
      if (liveTimer === null) { liveTimer = setInterval(loadLive, LIVE_EVERY_MS); }
    }, function () {
      // Not a supervisor (not_allowed): the panel stays hidden, nothing is asked again.
      byId('live').hidden = true;
      stopLive();
    });
  }

  function stopLive() {
    if (liveTimer !== null) { clearInterval(liveTimer); liveTimer = null; }
  }

  function showLive(conversations) {
    var list = byId('live-list');
    list.replaceChildren();
    conversations.forEach(function (c) {
      if (!c || typeof c.id !== 'string') { return; }
      var li = el('li', {class: 'live-item'});
      li.dataset.conversation = c.id;
      var summary = [String(c.state || ''), c.queue ? 'queue ' + c.queue : '',
                     c.agent ? 'agent ' + c.agent : 'no agent',
                     Math.round(Number(c.age_s) || 0) + ' s'].filter(Boolean).join(', ');
      li.append(el('strong', {}, 'Customer ' + String(c.customer || '')), ' ',
                el('span', {class: 'live-summary'}, summary), ' ');
      [['monitor', 'Monitor'], ['barge', 'Barge in']].forEach(function (b) {
        var button = el('button', {type: 'button', class: b[0]}, b[1]);
        button.setAttribute('aria-label', b[1] + ': customer ' + String(c.customer || ''));
        button.addEventListener('click', function () { supervise(b[0], c.id); });
        li.append(button, ' ');
      });
      list.appendChild(li);
    });
    byId('no-live').hidden = list.children.length > 0;
  }

  /* Monitor or barge into a conversation; its pane opens on the gateway's connected. */
  function supervise(kind, conversation) {
    request({type: kind, conversation: conversation}, function (r) {
      var chat = api.existing(conversation);
      if (chat && kind === 'barge') { api.setRole(chat, 'barge'); }
      api.status(kind === 'monitor'
        ? 'Monitoring ' + String(r.customer || '') + ': what you write reaches the agents only.'
        : 'You joined ' + String(r.customer || '') + '\'s chat: the customer sees your lines.');
    });
  }

  function welcome() {
    Object.keys(tasks).forEach(drop);
    loadCanned();
    loadTasks();
    loadLive();
  }

  byId('live-refresh').addEventListener('click', loadLive);

  return {
    answered: answered,
    cannedTyped: cannedTyped,
    ended: ended,
    offerCard: offerCard,
    revoked: revoked,
    sendCanned: sendCanned,
    closed: stopLive,
    supervise: supervise,
    task: task,
    tools: tools,
    welcome: welcome,
    wrapUp: wrapUp,
  };
};
