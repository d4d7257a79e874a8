/*
 * The adviser console. Talks to /console/api (JSON, with the session's CSRF token on every
 * change) and /console/ws (live queue, transcripts, alerts). Everything a person or adviser
 * wrote is shown with textContent, so markup in a message stays inert. Words come from the
 * data-label-* attributes the server filled from content/messages/console.yaml.
 */
(function () {
  'use strict';

  var root = document.getElementById('console');
  if (!root) {
    return;
  }
  var lang = root.getAttribute('data-lang') === 'cy' ? 'cy' : 'en';
  var MAX_BACKOFF_MS = 30000;
  var ME_TIMEOUT_MS = 10000;
  var ANNOUNCED_MS = 30000; // how long news (an arrival, a raised risk) stays in the status line
  // Storage keys start "helpline." so that the quick exit wipes them too.
  var DRAFT_KEY = 'helpline.console.draft.'; // + conversation id
  var OPEN_KEY = 'helpline.console.open';
  var RISK_RANK = { none: 0, concern: 1, suicide: 2, immediate: 3 };

  var me = null;
  var csrf = '';
  var socket = null;
  var attempt = 0;
  var retryTimer = null;
  var stopped = false;
  var exited = false; // the quick exit was used: nothing more is fetched or shown
  var current = null; // the open conversation's view
  var shownIds = {};
  var canned = { en: [], cy: [] };
  var lastQueue = null;
  // Unsent words per conversation, so a reply typed for one person never lands in another's
  // conversation, and a draft survives the session ending mid-typing. Also kept in this
  // tab's sessionStorage (never localStorage), named for whose they are, so a reload or a
  // slip off the page loses nothing; sending clears them, and logging out, someone else
  // logging in, the quick exit or closing the tab removes them all: staff PCs may be shared.
  var drafts = {};
  var draftsOf = null; // whose drafts they are
  var resumeId = null; // the conversation open when the session ended
  var seenWaiting = null; // ids already announced as waiting (null: not yet drawn)
  var seenRisk = null; // each listed conversation's risk when last drawn (null: not yet)
  var announcedTimer = null;
  var claiming = {};
  var BOXES = ['message', 'note', 'concern', 'transfer-note'];

  var dom = window.helplineDom(root);
  var $ = dom.$;
  var label = dom.label;
  var el = dom.el;
  var clear = dom.clear;
  var status = dom.status;

  // News for the status line (read out by screen readers), gone again after a while.
  function announce(text) {
    status(text);
    window.clearTimeout(announcedTimer);
    announcedTimer = window.setTimeout(function () {
      if ($('status').textContent === text) {
        status('');
      }
    }, ANNOUNCED_MS);
  }

  // A sentence from content with its {placeholders} filled in.
  function filled(name, values) {
    return label(name).replace(/\{(\w+)\}/g, function (whole, key) {
      return values[key] !== undefined && values[key] !== null ? String(values[key]) : whole;
    });
  }

  // A step that cannot be undone asks first, in the browser's own (accessible) dialog.
  function confirmed(name, values) {
    return window.confirm(filled(name, values));
  }

  function alertText(text) {
    var box = $('alerts');
    clear(box);
    if (text) {
      box.appendChild(el('p', text));
    }
  }

  // ---- the API ------------------------------------------------------------------------

  function call(method, path, body) {
    return dom.call(method, path, body, csrf);
  }

  function failed(result) {
    if (result.status === 401) {
      loggedOut(label('session-ended'));
    } else if (result.status === 403 || result.status === 404) {
      alertText(label('error-forbidden'));
    } else if (result.status === 409 && result.data && result.data.error === 'no_referral') {
      alertText(label('error-no-referral'));
    } else if (result.status === 409 && result.data && result.data.error === 'referral_final') {
      alertText(label('error-referral-final'));
    } else if (result.status === 409 && result.data && result.data.error === 'callback_final') {
      alertText(label('error-callback-final'));
    } else if (result.status === 409 && result.data && result.data.error === 'at_capacity') {
      alertText(label('error-at-capacity'));
    } else if (result.status === 409 && result.data && result.data.error === 'just_written') {
      alertText(label('error-just-written'));
    } else if (result.status === 409) {
      alertText(label('error-conflict'));
    } else {
      alertText(label('error'));
    }
  }

  // ---- drafts kept in this tab --------------------------------------------------------

  function tabStorage() {
    try {
      return window.sessionStorage;
    } catch (e) {
      return null; // blocked (privacy settings): drafts stay in the page's memory only
    }
  }

  function stored(key) {
    var tab = tabStorage();
    try {
      var value = tab && JSON.parse(tab.getItem(key) || 'null');
      return value && me && value.by === me.name ? value : null;
    } catch (e) {
      return null;
    }
  }

  function store(key, value) {
    var tab = tabStorage();
    try {
      if (value === null) {
        tab.removeItem(key);
      } else {
        tab.setItem(key, JSON.stringify(value));
      }
    } catch (e) {
      // No storage, or full: the draft stays in the page's memory.
    }
  }

  function storedKeys() {
    var tab = tabStorage();
    var keys = [];
    try {
      for (var i = 0; tab && i < tab.length; i += 1) {
        if (tab.key(i).indexOf('helpline.console.') === 0) {
          keys.push(tab.key(i));
        }
      }
    } catch (e) {
      // Nothing can be read: nothing was kept.
    }
    return keys;
  }

  function storeDraft(id) {
    store(DRAFT_KEY + id, drafts[id] ? { by: draftsOf, boxes: drafts[id] } : null);
  }

  // This member of staff's drafts from before a reload; anyone else's are removed.
  function loadDrafts() {
    storedKeys().forEach(function (key) {
      var kept = stored(key);
      if (key.indexOf(DRAFT_KEY) !== 0) {
        return;
      }
      if (kept && kept.boxes) {
        var id = key.slice(DRAFT_KEY.length);
        drafts[id] = drafts[id] || kept.boxes;
      } else {
        store(key, null);
      }
    });
  }

  function forgetStored() {
    storedKeys().forEach(function (key) {
      store(key, null);
    });
  }

  // ---- logging in and out -------------------------------------------------------------

  function showLogin(message) {
    $('app').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
  }

  function loggedOut(message, forget) {
    resumeId = !forget && current ? current.id : null;
    me = null;
    csrf = '';
    stopped = true;
    if (socket) {
      socket.close();
    }
    closeConversation();
    if (forget) {
      drafts = {};
      draftsOf = null;
      forgetStored();
    }
    seenWaiting = null;
    seenRisk = null;
    showLogin(message);
    $('username').focus();
  }

  function onLogin(event) {
    event.preventDefault();
    var body = {
      username: $('username').value.trim(),
      password: $('password').value
    };
    if (!$('code-row').hidden) {
      body.code = $('code').value.trim();
    }
    call('POST', '/console/login', body).then(function (result) {
      if (result.status === 200) {
        $('password').value = '';
        $('code').value = '';
        $('code-row').hidden = true;
        start(result.data);
        return;
      }
      var error = result.data && result.data.error;
      if (error === 'code') {
        $('code-row').hidden = false;
        $('login-error').textContent = label('login-code');
        $('code').focus();
      } else if (error === 'locked' || error === 'throttled') {
        $('login-error').textContent = label('login-locked');
      } else {
        $('login-error').textContent = label('login-invalid');
      }
    });
  }

  function onLogout() {
    call('POST', '/console/logout').then(function () {
      loggedOut('', true);
    });
  }

  function helpline() {
    return me && me.role !== 'programme';
  }

  function supervises() {
    return me && (me.role === 'supervisor' || me.role === 'admin');
  }

  function start(data) {
    me = data;
    csrf = data.csrf;
    stopped = false;
    if (draftsOf !== me.name) {
      // Someone else logged in at this PC: nothing of the last person's drafts.
      drafts = {};
      resumeId = null;
      draftsOf = me.name;
    }
    loadDrafts();
    if (!resumeId) {
      var before = stored(OPEN_KEY); // the conversation open before a reload
      resumeId = before && before.id ? String(before.id) : null;
    }
    $('login').hidden = true;
    $('app').hidden = false;
    $('whoami-name').textContent = me.name;
    var role = named('role', me.role);
    $('whoami-role').textContent = me.programme ? role + ' (' + me.programme + ')' : role;
    $('supervisor').hidden = !supervises();
    $('callbacks').hidden = !helpline();
    fillOutcomes();
    loadCanned();
    loadQueues();
    loadReferrals();
    if (helpline()) {
      loadCallbacks();
    }
    if (supervises()) {
      call('GET', '/console/api/safeguarding').then(function (r) {
        if (r.status === 200) {
          renderConcerns(r.data);
        }
      });
    }
    connect();
    if (resumeId) {
      var resume = resumeId;
      resumeId = null;
      openConversation(resume);
    }
  }

  // ---- live updates -------------------------------------------------------------------

  function connect() {
    if (stopped) {
      return;
    }
    var scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    var ws = new WebSocket(scheme + '//' + window.location.host + '/console/ws');
    socket = ws;
    ws.onopen = function () {
      attempt = 0;
      status(current && current.endedText ? current.endedText : label('live'));
      if (current) {
        watch(current.id);
      }
    };
    ws.onmessage = function (event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      onFrame(frame);
    };
    ws.onclose = function (event) {
      if (socket !== ws) {
        return;
      }
      socket = null;
      if (stopped) {
        return;
      }
      if (event.code === 4401) {
        loggedOut(label('session-ended'));
        return;
      }
      status(label('reconnecting'));
      attempt += 1;
      var delay = Math.min(MAX_BACKOFF_MS, 500 * Math.pow(2, attempt));
      window.clearTimeout(retryTimer);
      retryTimer = window.setTimeout(function () {
        // The session may have ended while we were away: ask before reconnecting. Only a
        // 401 says so; any other failure (the database busy or restarting) is tried again
        // by reconnecting, and asked again if that fails, until the server can answer.
        call('GET', '/console/api/me').then(function (r) {
          if (r.status === 401) {
            loggedOut(label('session-ended'));
          } else {
            connect();
          }
        }, connect);
      }, delay);
    };
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
    }
  }

  function watch(id) {
    send({ type: 'watch', conversation: id });
  }

  function onFrame(frame) {
    switch (frame.type) {
      case 'queue':
        lastQueue = frame;
        renderQueue(frame);
        break;
      case 'supervisor':
        renderSupervisor(frame);
        break;
      case 'safeguarding':
        renderConcerns(frame.items);
        if (frame.alert) {
          alertText(label('safeguarding-alert'));
        }
        break;
      case 'referrals':
        renderReferrals(frame.items);
        break;
      case 'callbacks':
        renderCallbacks(frame.items);
        break;
      case 'message':
        if (current && frame.conversation === current.id) {
          addMessage(frame);
        }
        break;
      case 'closed':
        if (current && frame.conversation === current.id) {
          personEnded(frame.by === 'person');
        }
        break;
      case 'delivery':
        if (current && frame.conversation === current.id && Array.isArray(frame.ids)) {
          delivery(frame.ids, frame.status);
        }
        break;
      case 'transcript':
        // The whole transcript, in answer to each watch (and again if the server may have
        // missed messages): what was said since it was fetched, or while the socket was
        // down, is added; what is shown already is skipped by id.
        if (current && frame.conversation === current.id && Array.isArray(frame.messages)) {
          frame.messages.forEach(addMessage);
        }
        break;
      case 'unwatched':
      case 'refused': // watched again (a reconnect) after it left this user's scope
      case 'erased':
        if (current && frame.conversation === current.id) {
          closeConversation();
        }
        break;
      default:
        break;
    }
  }

  // ---- the queue ----------------------------------------------------------------------

  function riskLabel(level) {
    return label('risk-' + level) || level;
  }

  // A code's words (reason, role, channel, queue); the code itself only if it has none.
  function named(kind, code) {
    var own = kind === 'queue' && /^adviser:/.test(code || '');
    if (own) {
      return filled('queue-adviser', { name: code.slice('adviser:'.length) });
    }
    return label(kind + '-' + code) || code;
  }

  // The journey's answer, named: "Who they are", "Friend or family", not "who", "other".
  function answerValue(key, value) {
    return key === 'who' ? named('who', value) : value;
  }

  function answer(key, value) {
    return named('answer', key) + ': ' + answerValue(key, value);
  }

  function reasons(flags) {
    return (flags || []).map(function (f) {
      return named('reason', f);
    });
  }

  function minutes(item) {
    var joined = Date.parse(item.joined_at);
    var seconds = isNaN(joined) ? item.waiting_seconds : (Date.now() - joined) / 1000;
    return label('minutes').replace('{n}', String(Math.max(0, Math.floor(seconds / 60))));
  }

  function fact(list, name, value) {
    list.appendChild(el('dt', name));
    list.appendChild(el('dd', value));
  }

  function itemFacts(item) {
    var facts = el('dl', null, 'facts');
    fact(facts, label('risk'), riskLabel(item.risk));
    fact(facts, label('channel'), named('channel', item.channel));
    fact(facts, label('language'), named('language', item.language));
    fact(facts, label('waiting'), minutes(item));
    fact(facts, label('queue'), named('queue', item.queue));
    if (item.claimed_by) {
      fact(facts, label('held-by'), item.claimed_by);
    }
    var keys = Object.keys(item.summary || {});
    if (keys.length) {
      var answers = keys.map(function (k) {
        return answer(k, item.summary[k]);
      });
      fact(facts, label('answers'), answers.join('; '));
    }
    return facts;
  }

  function queueItem(item, actionName, action) {
    var li = el('li', null, 'item risk-' + item.risk);
    var refId = 'ref-' + item.id;
    var ref = el('strong', item.reference);
    ref.id = refId;
    li.appendChild(ref);
    li.appendChild(itemFacts(item));
    if (actionName) {
      var button = el('button', actionName);
      button.type = 'button';
      button.setAttribute('aria-describedby', refId);
      button.setAttribute('data-key', (item.claimed_by ? 'c-' : 'w-') + item.id);
      button.addEventListener('click', action);
      li.appendChild(button);
    }
    return li;
  }

  function renderQueue(frame) {
    var waiting = $('waiting');
    var claimed = $('claimed');
    // Live updates rebuild the lists: keep keyboard focus on the same conversation's button.
    var focused = document.activeElement;
    var focusKey = focused && focused.getAttribute ? focused.getAttribute('data-key') : null;
    clear(waiting);
    clear(claimed);
    frame.waiting.forEach(function (item) {
      waiting.appendChild(
        queueItem(item, label('claim'), function (event) {
          claim(item.id, event.currentTarget);
        })
      );
    });
    if (!frame.waiting.length) {
      waiting.appendChild(el('li', label('queue-empty'), 'empty'));
    }
    frame.claimed.forEach(function (item) {
      var mine = me && item.claimed_by === me.name;
      var name = mine ? label('open') : supervises() ? label('join') : null;
      claimed.appendChild(
        queueItem(item, name, function () {
          if (mine) {
            openConversation(item.id);
          } else {
            joinConversation(item.id);
          }
        })
      );
    });
    if (!frame.claimed.length) {
      claimed.appendChild(el('li', label('claimed-empty'), 'empty'));
    }
    var everyone = frame.waiting.concat(frame.claimed);
    var news = arrivals(frame.waiting).concat(risksRaised(everyone), riskMoved(everyone));
    if (news.length) {
      announce(news.join(' '));
    }
    if (focusKey) {
      var again = document.querySelector('[data-key="' + focusKey + '"]');
      if (again) {
        again.focus();
      }
    }
  }

  // Once per person joining the queue, not at every redraw; none for those waiting already
  // when the console opened. A risk is named only when the screen found one.
  function arrivals(waiting) {
    var first = seenWaiting === null;
    var seen = {};
    var news = [];
    waiting.forEach(function (item) {
      seen[item.id] = true;
      if (!first && !seenWaiting[item.id]) {
        news.push(
          rank(item.risk) > 0
            ? filled('new-waiting', { risk: riskLabel(item.risk) })
            : label('new-waiting-unrated')
        );
      }
    });
    seenWaiting = seen;
    return news;
  }

  function rank(risk) {
    return RISK_RANK[risk] || 0;
  }

  // Any listed conversation whose risk has risen since it was last drawn (a risky message
  // often arrives just after the person joined the queue); the open one is riskMoved's.
  function risksRaised(items) {
    var before = seenRisk;
    var news = [];
    seenRisk = {};
    items.forEach(function (item) {
      seenRisk[item.id] = item.risk;
      var open = current && current.id === item.id;
      if (before && item.id in before && rank(item.risk) > rank(before[item.id]) && !open) {
        news.push(filled('risk-raised', { risk: riskLabel(item.risk), reference: item.reference }));
      }
    });
    return news;
  }

  // The open conversation's risk as the queue now has it: a risky message raises it.
  function riskMoved(items) {
    var news = [];
    if (!current) {
      return news;
    }
    items.forEach(function (item) {
      if (item.id !== current.id) {
        return;
      }
      var flags = item.flags || [];
      if (item.risk === current.risk && flags.join() === (current.flags || []).join()) {
        return;
      }
      var raised = item.risk !== current.risk;
      current.risk = item.risk;
      current.flags = flags;
      showDetails(current);
      if (raised) {
        news.push(filled('risk-changed', { risk: riskLabel(item.risk) }));
      }
    });
    return news;
  }

  function claim(id, button) {
    if (claiming[id]) {
      return; // a second click while the first is on its way
    }
    claiming[id] = true;
    if (button) {
      button.disabled = true;
    }
    alertText('');
    call('POST', '/console/api/conversations/' + id + '/claim').then(function (r) {
      delete claiming[id];
      if (button) {
        button.disabled = false;
      }
      if (r.status === 409 && current && current.id === id && current.mine) {
        return; // ours already
      }
      if (r.status === 200) {
        showConversation(r.data);
      } else {
        failed(r);
      }
    });
  }

  function claimNext() {
    alertText('');
    call('POST', '/console/api/claim-next').then(function (r) {
      if (r.status === 200 && r.data && r.data.id) {
        showConversation(r.data);
      } else if (r.status === 200) {
        alertText(label('queue-empty'));
      } else {
        failed(r);
      }
    });
  }

  // ---- one conversation ---------------------------------------------------------------

  function openConversation(id) {
    call('GET', '/console/api/conversations/' + id).then(function (r) {
      if (r.status === 200) {
        showConversation(r.data);
      } else {
        failed(r);
      }
    });
  }

  function joinConversation(id) {
    call('POST', '/console/api/conversations/' + id + '/join').then(function (r) {
      if (r.status === 200) {
        showConversation(r.data);
      } else {
        failed(r);
      }
    });
  }

  function keepDraft() {
    if (!current) {
      return;
    }
    var draft = {};
    var any = false;
    BOXES.forEach(function (box) {
      draft[box] = $(box).value;
      any = any || draft[box] !== '';
    });
    if (any) {
      drafts[current.id] = draft;
    } else {
      delete drafts[current.id];
    }
    storeDraft(current.id);
  }

  function fillBoxes(id) {
    var draft = drafts[id] || {};
    BOXES.forEach(function (box) {
      $(box).value = draft[box] || '';
    });
  }

  function showDetails(view) {
    var details = $('conversation-details');
    clear(details);
    var why = reasons(view.flags);
    fact(details, label('risk'), riskLabel(view.risk) + (why.length ? ' (' + why.join(', ') + ')' : ''));
    fact(details, label('channel'), named('channel', view.channel));
    fact(details, label('language'), named('language', view.language));
    fact(details, label('queue'), named('queue', view.queue));
    Object.keys(view.summary || {}).forEach(function (k) {
      fact(details, named('answer', k), answerValue(k, view.summary[k]));
    });
  }

  function showReplyControls(open) {
    $('say-form').hidden = !open;
    $('release-row').hidden = !open;
    $('transfer-form').hidden = !open;
  }

  // A supervisor reading a conversation another adviser holds may release or transfer it
  // (one who has gone home, or is stuck), but writes nothing in it.
  function overseen(view) {
    return !view.mine && supervises() && view.owner === 'adviser' && !!view.adviser;
  }

  function showControls(view) {
    var oversee = overseen(view);
    $('controls').hidden = !view.mine && !oversee;
    $('read-only').hidden = view.mine;
    showReplyControls(true);
    ['say-form', 'note-form', 'end-form', 'safeguarding-form'].forEach(function (id) {
      $(id).hidden = !view.mine;
    });
  }

  function personEnded(byPerson) {
    if (current.ended) {
      return;
    }
    current.ended = true;
    showReplyControls(false);
    // The adviser who held it can still record the outcome when the person ended it;
    // anyone else (a supervisor watching) is told only that it ended. Kept, so that the live
    // socket (re)opening does not put "Live updates on." in its place.
    current.endedText = label(current.mine && byPerson ? 'person-ended' : 'chat-ended');
    status(current.endedText);
  }

  function showConversation(view) {
    keepDraft();
    if (current && current.id !== view.id) {
      send({ type: 'unwatch', conversation: current.id });
    }
    current = view;
    shownIds = {};
    fillBoxes(view.id);
    $('conversation').hidden = false;
    $('conversation-reference').textContent = view.reference;
    showDetails(view);
    clear($('transcript'));
    view.messages.forEach(addMessage);
    showControls(view);
    $('outcome').value = ''; // chosen afresh for each conversation
    $('outcome').removeAttribute('aria-invalid');
    store(OPEN_KEY, { by: draftsOf, id: view.id });
    fillCanned(view.language);
    watch(view.id);
    if (view.mine) {
      $('message').focus();
    } else {
      $('transcript').focus();
    }
  }

  function closeConversation() {
    keepDraft();
    if (current) {
      send({ type: 'unwatch', conversation: current.id });
    }
    current = null;
    fillBoxes('');
    store(OPEN_KEY, null);
    $('conversation').hidden = true;
  }

  // The conversation is no longer this adviser's (ended, transferred, released): its
  // drafts go, the result is said, and focus goes back to the queue.
  function finished(done) {
    if (current) {
      delete drafts[current.id];
      storeDraft(current.id);
      fillBoxes('');
    }
    closeConversation();
    announce(label(done));
    $('queue-heading').focus();
  }

  function authorLabel(m) {
    if (m.direction === 'note') {
      return label('author-note') + (m.author_name ? ' (' + m.author_name + ')' : '');
    }
    var name = label('author-' + m.author) || m.author;
    return m.author === 'adviser' && m.author_name ? name + ' (' + m.author_name + ')' : name;
  }

  function addMessage(m) {
    if (m.id !== undefined && shownIds[m.id]) {
      return;
    }
    if (m.id !== undefined) {
      shownIds[m.id] = true;
    }
    var box = el('div', null, 'message message--' + (m.direction === 'note' ? 'note' : m.author));
    box.appendChild(el('span', authorLabel(m), 'author'));
    if (m.risk && m.risk !== 'none') {
      // The server screened this message as risky: said in words, not by colour alone.
      box.className += ' message--risky risk-' + m.risk;
      box.appendChild(el('span', ' — ' + riskLabel(m.risk), 'risk-mark'));
    }
    box.appendChild(el('p', m.text, 'text'));
    if (m.status === 'unreachable') {
      box.appendChild(el('p', label('unreachable'), 'delivery-note'));
    }
    var log = $('transcript');
    // In the order they were said (by id), whichever way each arrived.
    var before = null;
    if (typeof m.id === 'number') {
      box.setAttribute('data-id', String(m.id));
      for (var c = log.lastElementChild; c && Number(c.getAttribute('data-id')) > m.id; c = c.previousElementSibling) {
        before = c;
      }
    }
    log.insertBefore(box, before);
    log.scrollTop = log.scrollHeight;
  }

  // Replies the channel refused until the person writes again (WhatsApp's 24 hours), or
  // that went once they did: said in words beside each reply, and on the status line.
  function delivery(ids, state) {
    var log = $('transcript');
    ids.forEach(function (id) {
      var box = log.querySelector('[data-id="' + Number(id) + '"]');
      var note = box && box.querySelector('.delivery-note');
      if (state === 'unreachable' && box && !note) {
        box.appendChild(el('p', label('unreachable'), 'delivery-note'));
      } else if (state === 'sent' && note) {
        box.removeChild(note);
      }
    });
    if (state === 'unreachable' || state === 'sent') {
      announce(label(state === 'sent' ? 'reached' : 'unreachable'));
    }
  }

  // The button is disabled while its request is on its way: a double click acts once.
  function act(path, body, after, button) {
    if (!current || (button && button.disabled)) {
      return;
    }
    alertText('');
    var id = current.id;
    if (button) {
      button.disabled = true;
    }
    call('POST', '/console/api/conversations/' + id + path, body).then(function (r) {
      if (button) {
        button.disabled = false;
      }
      if (r.status === 200) {
        if (after) {
          after(r.data);
        }
      } else {
        failed(r);
      }
    });
  }

  function submitter(event) {
    return event.submitter || event.target.querySelector('button[type=submit]');
  }

  function onSay(event) {
    event.preventDefault();
    var text = $('message').value.trim();
    if (!text) {
      return;
    }
    act('/say', { text: text }, function () {
      $('message').value = '';
      $('canned').value = '';
      keepDraft();
      $('message').focus();
    }, submitter(event));
  }

  function onNote(event) {
    event.preventDefault();
    var text = $('note').value.trim();
    if (text) {
      act('/note', { text: text }, function () {
        $('note').value = '';
        keepDraft();
      }, submitter(event));
    }
  }

  function onTransfer(event) {
    event.preventDefault();
    var target = $('transfer-to');
    var chosen = target.options[target.selectedIndex];
    if (!current || !confirmed('confirm-transfer', {
      reference: current.reference,
      queue: chosen ? chosen.textContent : target.value
    })) {
      return;
    }
    act('/transfer', { queue: $('transfer-to').value, note: $('transfer-note').value }, function () {
      finished('done-transferred');
    }, submitter(event));
  }

  function onEnd(event) {
    event.preventDefault();
    var select = $('outcome');
    if (!current) {
      return;
    }
    if (!select.value) {
      select.setAttribute('aria-invalid', 'true');
      alertText(label('outcome-missing'));
      select.focus();
      return;
    }
    var outcome = select.options[select.selectedIndex].textContent;
    if (!confirmed('confirm-end', { reference: current.reference, outcome: outcome })) {
      return;
    }
    act('/end', { outcome: select.value }, function () {
      finished('done-ended');
    }, submitter(event));
  }

  function onConcern(event) {
    event.preventDefault();
    var text = $('concern').value.trim();
    if (text) {
      act('/safeguarding', { concern: text }, function () {
        $('concern').value = '';
        keepDraft();
        announce(label('safeguarding-recorded'));
        $('concern').focus();
      }, submitter(event));
    }
  }

  // ---- choices: outcomes, canned responses, transfer targets --------------------------

  function option(select, value, text) {
    var o = el('option', text);
    o.value = value;
    select.appendChild(o);
  }

  function fillOutcomes() {
    var select = $('outcome');
    clear(select);
    // No outcome is chosen for the adviser: End asks for one.
    option(select, '', label('outcome-choose'));
    me.outcomes.forEach(function (name) {
      option(select, name, label('outcome-' + name) || name);
    });
  }

  function loadCanned() {
    ['en', 'cy'].forEach(function (l) {
      call('GET', '/console/api/canned?lang=' + l).then(function (r) {
        if (r.status === 200) {
          canned[l] = r.data;
        }
      });
    });
  }

  function fillCanned(language) {
    var select = $('canned');
    while (select.options.length > 1) {
      select.remove(1);
    }
    (canned[language === 'cy' ? 'cy' : 'en'] || []).forEach(function (c) {
      option(select, c.text, c.label);
    });
  }

  function loadQueues() {
    call('GET', '/console/api/queues').then(function (r) {
      if (r.status !== 200) {
        return;
      }
      var select = $('transfer-to');
      clear(select);
      r.data.forEach(function (q) {
        if (!(me && q === 'adviser:' + me.name)) {
          option(select, q, named('queue', q));
        }
      });
    });
  }

  // ---- call-backs, referrals, supervision ---------------------------------------------

  function loadCallbacks() {
    call('GET', '/console/api/callbacks').then(function (r) {
      if (r.status === 200) {
        renderCallbacks(r.data);
      }
    });
  }

  function renderCallbacks(items) {
    var list = $('callback-list');
    clear(list);
    items.forEach(function (cb) {
      var li = el('li', null, 'item');
      var ref = el('strong', cb.reference);
      ref.id = 'callback-' + cb.id;
      li.appendChild(ref);
      if (cb.left_by_quick_exit) {
        li.appendChild(el('p', label('callback-quick-exit'), 'callback-warning'));
      }
      var facts = el('dl', null, 'facts');
      fact(facts, label('callback-window'), cb.window);
      fact(facts, label('channel'), named('channel', cb.channel));
      fact(facts, label('language'), cb.language);
      if (!cb.has_number) {
        fact(facts, label('callback-number'), label('callback-no-number'));
      }
      li.appendChild(facts);
      if (cb.has_number) {
        showNumberButton(li, cb, ref.id);
      }
      ['done', 'not_reached'].forEach(function (s) {
        var b = el('button', label('callback-' + s));
        b.type = 'button';
        b.setAttribute('aria-describedby', ref.id);
        b.addEventListener('click', function () {
          // Either way the call-back leaves the list and its number is deleted.
          if (!confirmed('confirm-callback-' + s, { reference: cb.reference })) {
            return;
          }
          call('POST', '/console/api/callbacks/' + cb.id, { status: s }).then(function (r) {
            if (r.status === 200) {
              loadCallbacks();
            } else {
              failed(r);
            }
          });
        });
        li.appendChild(b);
      });
      list.appendChild(li);
    });
    if (!items.length) {
      list.appendChild(el('li', label('callbacks-empty'), 'empty'));
    }
  }

  // The number is fetched only when asked for (the server audits who and when), shown as
  // text, and forgotten when the list is drawn again.
  function showNumberButton(li, cb, describedBy) {
    var shown = el('p', null, 'callback-number');
    shown.setAttribute('aria-live', 'polite');
    var b = el('button', label('callback-show'));
    b.type = 'button';
    b.setAttribute('aria-describedby', describedBy);
    b.addEventListener('click', function () {
      call('POST', '/console/api/callbacks/' + cb.id + '/number').then(function (r) {
        if (r.status === 200 && r.data && r.data.number) {
          shown.textContent = label('callback-number') + ': ' + r.data.number;
          b.disabled = true;
        } else {
          failed(r);
        }
      });
    });
    li.appendChild(b);
    li.appendChild(shown);
  }

  function loadReferrals() {
    call('GET', '/console/api/referrals').then(function (r) {
      if (r.status === 200) {
        renderReferrals(r.data);
      }
    });
  }

  function renderReferrals(items) {
    var list = $('referral-list');
    clear(list);
    var canMark = me && me.role !== 'adviser';
    items.forEach(function (ref) {
      var li = el('li', null, 'item');
      var title = el('strong', ref.reference);
      title.id = 'referral-' + ref.id;
      li.appendChild(title);
      var facts = el('dl', null, 'facts');
      fact(facts, label('programme'), ref.programme);
      fact(facts, label('referral-status'), label('referral-' + ref.status) || ref.status);
      var shared = Object.keys(ref.shared || {}).map(function (k) {
        return k + ': ' + ref.shared[k];
      });
      if (shared.length) {
        fact(facts, label('shared'), shared.join('; '));
      }
      li.appendChild(facts);
      // Withdrawn and declined are final (the server refuses a change): no buttons.
      var final = ref.status === 'withdrawn' || ref.status === 'declined';
      if (canMark && !final) {
        ['contacted', 'accepted', 'declined'].forEach(function (s) {
          var b = el('button', label('referral-' + s));
          b.type = 'button';
          b.setAttribute('aria-describedby', title.id);
          b.addEventListener('click', function () {
            // Declined is final: only the person can agree to a new referral.
            if (s === 'declined' && !confirmed('confirm-decline', { reference: ref.reference })) {
              return;
            }
            call('POST', '/console/api/referrals/' + ref.id, { status: s }).then(function (r) {
              if (r.status === 200) {
                loadReferrals();
              } else {
                failed(r);
              }
            });
          });
          li.appendChild(b);
        });
      }
      list.appendChild(li);
    });
    if (!items.length) {
      list.appendChild(el('li', label('referrals-empty'), 'empty'));
    }
  }

  function renderSupervisor(frame) {
    var staff = $('staff');
    clear(staff);
    frame.staff.forEach(function (s) {
      staff.appendChild(el('li', s.name + ' (' + named('role', s.role) + ') — ' + label('load') + ': ' + s.load + (s.capacity ? ' / ' + s.capacity : '')));
    });
    var depth = $('depth');
    clear(depth);
    frame.queues.forEach(function (q) {
      var wait = label('minutes').replace('{n}', String(Math.floor(q.longest_seconds / 60)));
      depth.appendChild(
        el('li', named('queue', q.queue) + ': ' + q.waiting + ' — ' + label('longest-wait') + ' ' + wait)
      );
    });
    var urgent = $('urgent');
    clear(urgent);
    frame.urgent.forEach(function (u) {
      var li = el('li', null, 'item risk-' + u.risk);
      var ref = el('strong', u.reference);
      ref.id = 'urgent-' + u.id;
      li.appendChild(ref);
      li.appendChild(el('span', ' ' + riskLabel(u.risk) + (u.adviser ? ' — ' + u.adviser : '')));
      var b = el('button', label('join'));
      b.type = 'button';
      b.setAttribute('aria-describedby', ref.id);
      b.addEventListener('click', function () {
        joinConversation(u.id);
      });
      li.appendChild(b);
      urgent.appendChild(li);
    });
    if (!frame.urgent.length) {
      urgent.appendChild(el('li', label('urgent-empty'), 'empty'));
    }
  }

  function renderConcerns(items) {
    var list = $('concerns');
    // A new concern redraws the list: what a supervisor has typed, and where, stays.
    var typed = {};
    Array.prototype.forEach.call(list.querySelectorAll('textarea'), function (t) {
      typed[t.id] = t.value;
    });
    var focused = document.activeElement;
    var focusId = focused && list.contains(focused) ? focused.id : null;
    clear(list);
    items.forEach(function (c) {
      var li = el('li', null, 'item');
      li.appendChild(el('strong', c.reference));
      var facts = el('dl', null, 'facts');
      fact(facts, label('raised-by'), c.raised_by);
      li.appendChild(facts);
      li.appendChild(el('p', c.concern, 'text'));
      var form = el('form', null, 'stack');
      var fieldId = 'decision-' + c.id;
      var lab = el('label', label('decision'));
      lab.setAttribute('for', fieldId);
      var field = el('textarea');
      field.id = fieldId;
      field.rows = 2;
      field.value = typed[fieldId] || '';
      var b = el('button', label('sign-off'));
      b.type = 'submit';
      form.appendChild(lab);
      form.appendChild(field);
      form.appendChild(b);
      form.addEventListener('submit', function (event) {
        event.preventDefault();
        var decision = field.value.trim();
        if (!decision) {
          alertText(label('decision-missing'));
          field.focus();
          return;
        }
        call('POST', '/console/api/safeguarding/' + c.id + '/sign-off', {
          decision: decision
        }).then(function (r) {
          if (r.status === 200) {
            alertText('');
            call('GET', '/console/api/safeguarding').then(function (rr) {
              if (rr.status === 200) {
                renderConcerns(rr.data);
              }
            });
          } else {
            failed(r);
          }
        });
      });
      li.appendChild(form);
      list.appendChild(li);
    });
    if (!items.length) {
      list.appendChild(el('li', label('safeguarding-empty'), 'empty'));
    }
    if (focusId && document.getElementById(focusId)) {
      document.getElementById(focusId).focus();
    }
  }

  // ---- wiring -------------------------------------------------------------------------

  function init() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    $('claim-next').addEventListener('click', claimNext);
    $('say-form').addEventListener('submit', onSay);
    $('note-form').addEventListener('submit', onNote);
    $('release').addEventListener('click', function () {
      if (!current || !confirmed('confirm-release', { reference: current.reference })) {
        return;
      }
      act('/release', {}, function () {
        finished('done-released');
      }, $('release'));
    });
    $('transfer-form').addEventListener('submit', onTransfer);
    $('end-form').addEventListener('submit', onEnd);
    $('safeguarding-form').addEventListener('submit', onConcern);
    $('close-conversation').addEventListener('click', function () {
      closeConversation();
      $('queue-heading').focus();
    });
    BOXES.forEach(function (box) {
      $(box).addEventListener('input', keepDraft);
    });
    $('outcome').addEventListener('change', function () {
      $('outcome').removeAttribute('aria-invalid');
    });
    $('canned').addEventListener('change', function () {
      if ($('canned').value) {
        $('message').value = $('canned').value;
        keepDraft();
        $('message').focus();
      }
    });
    // Waiting times move on between queue events.
    window.setInterval(function () {
      if (lastQueue) {
        renderQueue(lastQueue);
      }
    }, 30000);
    if (window.HelplineExit) {
      window.HelplineExit.onExit(function () {
        exited = true;
        stopped = true;
        if (socket) {
          socket.close();
        }
      });
    }
    whoAmI(0);
  }

  // Logged in already? Only a 401 says no. The database busy or restarting (a 5xx) or the
  // network down says nothing of the session: ask again, rather than show the login form
  // to someone whose session is alive.
  // A 200 that is not the console's answer (a proxy's or a captive portal's page) counts
  // as not answering too, and so does no answer within ME_TIMEOUT_MS.
  function whoAmI(tries) {
    if (exited) {
      return;
    }
    dom.call('GET', '/console/api/me', null, '', ME_TIMEOUT_MS).then(function (r) {
      if (exited) {
        return;
      }
      if (r.status === 200 && r.data && r.data.csrf) {
        status('');
        start(r.data);
      } else if (r.status === 401) {
        status('');
        showLogin('');
      } else {
        notAnswering(tries);
      }
    }).catch(function () {
      notAnswering(tries);
    });
  }

  function notAnswering(tries) {
    if (exited) {
      return;
    }
    var text = label('not-answering');
    if ($('status').textContent !== text) {
      status(text); // once: a screen reader need not hear it again at every try
    }
    window.setTimeout(function () {
      whoAmI(tries + 1);
    }, Math.min(MAX_BACKOFF_MS, 500 * Math.pow(2, tries)));
  }

  void lang;
  init();
})();
