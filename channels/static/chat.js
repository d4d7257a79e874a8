/*
 * The web chat page: one websocket to /chat/ws, messages rendered as text, reconnects that
 * resume the conversation with the token kept in sessionStorage (never localStorage or a cookie).
 * Every word shown comes from data-label-* attributes filled by the server from content.
 * Protocol: docs/webchat.md.
 */
(function () {
  'use strict';

  var TOKEN_KEY = 'helpline.token';
  var MAX_BACKOFF_MS = 30000;
  var TYPING_TIMEOUT_MS = 30000;
  var NEAR_BOTTOM_PX = 160;
  var AUTHORS = ['person', 'bot', 'adviser', 'system'];

  var root = document.getElementById('chat');
  if (!root) {
    return;
  }
  var log = document.getElementById('messages');
  var typingLine = document.getElementById('typing');
  var statusLine = document.getElementById('status');
  var optionsBox = document.getElementById('options');
  var form = document.getElementById('message-form');
  var field = document.getElementById('message');
  var newChatButton = document.getElementById('new-chat');
  var keepOpenButton = document.getElementById('keep-open');
  var lengthNote = document.getElementById('length-note');
  var lang = document.documentElement.lang === 'cy' ? 'cy' : 'en';
  var params = new URLSearchParams(window.location.search);
  var embedded = params.get('embed') === '1';

  var socket = null;
  var connection = 0; // increases with every socket, so stale events can be ignored
  var attempt = 0;
  var retryTimer = null;
  var typingTimer = null;
  var stopped = false; // after quick exit: never reconnect
  var TOO_MANY_NEW_CHATS = 4429; // the server's close code (channels/webchat.py)
  var LIMITED_WAIT_MS = 60000;
  var MAX_TEXT = 4000; // the server refuses longer messages (channels/webchat.py MAX_TEXT)
  // A long paste goes as up to this many messages at once; the rest stays in the box, so the
  // server's limit on messages a minute is never reached by one press of Send.
  var MAX_PARTS_AT_ONCE = 5;
  var ACK_TIMEOUT_MS = 10000; // no answer to a message in this long: the socket is dead
  // A message refused without a wait named is sent again after this long; a named wait is
  // taken up to MAX_RETRY_MS.
  var RETRY_MS = 60000;
  var MAX_RETRY_MS = 600000;
  // The server acknowledges each message by its id once stored, and names the ids of the
  // page's own messages in its history (the session says so). An older server does not: a
  // "typing" or a reply then stands for everything sent before it, as it used to.
  var acks = false;
  var limitedUntil = 0; // after TOO_MANY_NEW_CHATS: no new try before this time
  var ended = false;
  var sawHistory = false; // a history has been rendered since the page loaded
  var ready = false; // this socket has had its session and history: messages may go out
  var everConnected = false;
  var helloToken = null;
  // The token also lives here for as long as the page does: with storage blocked, a dropped
  // socket would otherwise come back as a brand-new conversation.
  var pageToken = null;
  var following = true; // the reader is at the end of the conversation: keep them there
  var historyAt = 0; // when the last history frame was applied
  var HISTORY_OVERLAP_MS = 3000;
  var historyMaxId = 0; // the newest server message id in the last history, when ids are sent

  // What the log shows, in order: {author, text, el, pending (an outbox entry or null)}.
  var shown = [];
  // Messages the server may not have yet: {id, text, conn (socket they went out on, or 0),
  // el, retry (timer to send again after a refusal, or null)}. An entry leaves only when
  // the server says it has it: its ack, or a history naming its id.
  var outbox = [];

  function label(name) {
    return root.getAttribute('data-label-' + name) || '';
  }

  // ---- storage (sessionStorage only; it can be unavailable) -------------------------------

  function loadToken() {
    if (pageToken) {
      return pageToken;
    }
    try {
      return window.sessionStorage.getItem(TOKEN_KEY);
    } catch (e) {
      return null;
    }
  }

  function saveToken(token) {
    pageToken = token || null;
    try {
      if (token) {
        window.sessionStorage.setItem(TOKEN_KEY, token);
      } else {
        window.sessionStorage.removeItem(TOKEN_KEY);
      }
    } catch (e) {
      // Without storage a reload starts a new chat; the conversation still works.
    }
  }

  function newId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    var out = '';
    for (var i = 0; i < bytes.length; i += 1) {
      out += (bytes[i] + 256).toString(16).slice(1);
    }
    return out;
  }

  // ---- rendering ---------------------------------------------------------------------------

  // URLs and UK phone numbers become links, built as elements: message text is never HTML.
  var LINKABLE = /(https?:\/\/[^\s<>"]+)|((?:\+44 ?|0)\d(?: ?\d){6,9}|116 ?\d{3}|999|111|101)/g;
  var TRAILING = /[.,;:!?)\]'"]+$/;

  function isDigit(ch) {
    return ch >= '0' && ch <= '9';
  }

  function appendText(parent, text) {
    if (text) {
      parent.appendChild(document.createTextNode(text));
    }
  }

  // A number said to be texted ("or text 07860 077333", "tecstiwch 07860 077333") opens a
  // message, not a call.
  var TEXT_BEFORE = /(?:^|[^a-z])(?:text|txt|texting|[td]ecst\w*)(?: (?:us|us on|on|to|i))?\s*$/;

  function linkFor(url, phone, lead) {
    var a = document.createElement('a');
    if (url) {
      a.href = url;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      a.textContent = url;
    } else {
      var scheme = TEXT_BEFORE.test((lead || '').toLowerCase()) ? 'sms:' : 'tel:';
      a.href = scheme + phone.replace(/ /g, '');
      a.textContent = phone;
    }
    return a;
  }

  function renderText(parent, text) {
    var last = 0;
    var match;
    LINKABLE.lastIndex = 0;
    while ((match = LINKABLE.exec(text)) !== null) {
      var start = match.index;
      var raw = match[0];
      var url = null;
      var phone = null;
      if (match[1]) {
        raw = raw.replace(TRAILING, '');
        try {
          var parsed = new URL(raw);
          if (parsed.protocol === 'https:' || parsed.protocol === 'http:') {
            url = raw;
          }
        } catch (e) {
          url = null;
        }
      } else {
        var before = start > 0 ? text.charAt(start - 1) : '';
        var after = text.charAt(start + raw.length);
        // Only whole numbers: not the "101" inside "21012" or a part of a longer figure.
        if (!isDigit(before) && before !== '.' && !isDigit(after) && !(after === '.' && isDigit(text.charAt(start + raw.length + 1)))) {
          phone = raw;
        }
      }
      if (!url && !phone) {
        continue;
      }
      appendText(parent, text.slice(last, start));
      parent.appendChild(linkFor(url, phone, text.slice(Math.max(0, start - 16), start)));
      last = start + raw.length;
      LINKABLE.lastIndex = last;
    }
    appendText(parent, text.slice(last));
  }

  function nearBottom() {
    var doc = document.scrollingElement || document.documentElement;
    return doc.scrollHeight - (doc.scrollTop + window.innerHeight) < NEAR_BOTTOM_PX;
  }

  function scrollToEnd() {
    var doc = document.scrollingElement || document.documentElement;
    doc.scrollTop = doc.scrollHeight;
    following = true;
  }

  // The sticky composer grows with reply buttons (and the window can shrink): a reader who
  // was at the end stays there, or the newest question would sit behind the buttons.
  function keepFollowing() {
    if (following) {
      scrollToEnd();
    }
  }

  // Texts the server marked as emergency guidance: shown apart, under their own label.
  var urgentTexts = Object.create(null);

  function buildMessage(author, text) {
    var item = document.createElement('div');
    var urgent = author === 'bot' && urgentTexts[text] === true;
    item.className = 'message message--' + author + (urgent ? ' message--urgent' : '');
    var who = document.createElement('p');
    who.className = 'message__author';
    who.textContent = label(urgent ? 'urgent' : author);
    var body = document.createElement('p');
    body.className = 'message__text';
    body.dir = 'auto'; // a message in Arabic or Urdu reads right to left, its punctuation too
    renderText(body, text);
    item.appendChild(who);
    item.appendChild(body);
    return item;
  }

  function markPending(entry, pending) {
    var el = entry.el;
    if (!el) {
      return;
    }
    var note = el.querySelector('.message__pending');
    if (pending && !note) {
      note = document.createElement('p');
      note.className = 'message__pending';
      note.textContent = label('pending');
      el.appendChild(note);
      el.classList.add('message--waiting');
    } else if (!pending && note) {
      el.removeChild(note);
      el.classList.remove('message--waiting');
    }
  }

  function addMessage(author, text, outboxEntry) {
    var follow = nearBottom();
    var el = buildMessage(author, text);
    log.appendChild(el);
    shown.push({ author: author, text: text, el: el, pending: outboxEntry || null });
    if (outboxEntry) {
      outboxEntry.el = el;
    }
    if (follow || author === 'person') {
      scrollToEnd();
    }
    return el;
  }

  // Re-render without announcing: a reload should not read the whole conversation aloud.
  function renderQuietly(messages) {
    log.setAttribute('aria-live', 'off');
    while (log.firstChild) {
      log.removeChild(log.firstChild);
    }
    shown = [];
    for (var i = 0; i < messages.length; i += 1) {
      addMessage(messages[i].author, messages[i].text, null);
    }
    scrollToEnd();
    window.setTimeout(function () {
      log.setAttribute('aria-live', 'polite');
    }, 400);
  }

  function clearOptions() {
    var hadFocus = optionsBox.contains(document.activeElement);
    while (optionsBox.firstChild) {
      optionsBox.removeChild(optionsBox.firstChild);
    }
    optionsBox.hidden = true;
    return hadFocus;
  }

  function showOptions(options) {
    // A keyboard or screen reader user on a quick reply as new ones arrive: focus goes to
    // the first new one (or the message field), never lost to the page.
    var hadFocus = clearOptions();
    if (!options || !options.length || ended) {
      if (hadFocus) {
        field.focus({ preventScroll: true });
      }
      return;
    }
    for (var i = 0; i < options.length; i += 1) {
      var text = String(options[i]);
      if (!text) {
        continue;
      }
      var button = document.createElement('button');
      button.type = 'button';
      button.className = 'option';
      button.textContent = text;
      button.addEventListener('click', onOptionClick);
      optionsBox.appendChild(button);
    }
    optionsBox.hidden = !optionsBox.firstChild;
    if (hadFocus) {
      (optionsBox.firstChild || field).focus({ preventScroll: true });
    }
    keepFollowing();
  }

  function onOptionClick(event) {
    var text = event.currentTarget.textContent;
    sendMessage(text);
    // The buttons are gone now: keep focus somewhere sensible. With a keyboard, the message
    // field; on a touch screen, the log (focusing the field would open the on-screen keyboard).
    if (wantsEnterToSend()) {
      field.focus({ preventScroll: true });
    } else {
      log.focus({ preventScroll: true });
    }
  }

  var statusIsError = false;

  function setStatus(text, isError) {
    statusIsError = !!isError;
    if (statusLine.textContent !== text) {
      statusLine.textContent = text || '';
    }
  }

  // Said politely, near the box, only when it changes: a screen reader is not interrupted
  // at every key press.
  function setLengthNote(text) {
    if (lengthNote && lengthNote.textContent !== text) {
      lengthNote.textContent = text || '';
    }
  }

  function onFieldInput() {
    if (field.value.length > MAX_TEXT) {
      setLengthNote(label('long-will-split'));
    } else if (lengthNote && lengthNote.textContent !== label('long-rest-kept')) {
      setLengthNote('');
    }
  }

  // Text in pieces the server takes (at most MAX_TEXT characters), cut after a space or line
  // break where there is one in the second half of a piece, never inside a character.
  function splitLong(text) {
    var parts = [];
    var rest = text;
    while (rest.length > MAX_TEXT) {
      var cut = -1;
      for (var i = MAX_TEXT - 1; i >= MAX_TEXT / 2; i -= 1) {
        if (/\s/.test(rest.charAt(i))) {
          cut = i + 1; // the space ends this piece
          break;
        }
      }
      if (cut === -1) {
        cut = MAX_TEXT;
        var code = rest.charCodeAt(cut - 1);
        if (code >= 0xd800 && code <= 0xdbff) {
          cut -= 1; // the first half of a surrogate pair stays with its second half
        }
      }
      parts.push(rest.slice(0, cut));
      rest = rest.slice(cut);
    }
    parts.push(rest);
    return parts.filter(function (part) {
      return part.trim() !== '';
    });
  }

  function setTyping(on) {
    if (typingTimer !== null) {
      window.clearTimeout(typingTimer);
      typingTimer = null;
    }
    var text = on ? label('typing') : '';
    if (typingLine.textContent !== text) {
      typingLine.textContent = text;
    }
    typingLine.classList.toggle('typing--on', !!on);
    if (on) {
      typingTimer = window.setTimeout(function () {
        setTyping(false);
      }, TYPING_TIMEOUT_MS);
    }
  }

  // The message box stays: the last message says "just send a message" to start again, and
  // writing does (startNewChat).
  function setEnded(isEnded) {
    var buttonHadFocus = optionsBox.contains(document.activeElement) ||
      (!!keepOpenButton && keepOpenButton === document.activeElement);
    ended = isEnded;
    newChatButton.hidden = !isEnded;
    if (isEnded) {
      showKeepOpen(false);
      clearOptions();
      setTyping(false);
      if (buttonHadFocus) {
        newChatButton.focus();
      }
    }
  }

  // "stop" or "delete my data": on a shared phone what they wrote must not stay on screen.
  // The same clean-up as quick exit, but the page stays, with its last words (the goodbye
  // or what was deleted) and a way to start again.
  function forgetConversation() {
    var last = shown.length ? shown[shown.length - 1] : null;
    var keep = last && last.author !== 'person' ? last : null;
    saveToken(null);
    outbox = [];
    // Removed, not redrawn: a goodbye still arriving must be announced as usual.
    while (log.firstChild) {
      log.removeChild(log.firstChild);
    }
    shown = [];
    if (keep) {
      log.appendChild(keep.el);
      shown.push(keep);
    }
    field.value = '';
    setLengthNote('');
    setStatus(label('ended'));
    setEnded(true);
  }

  // ---- the socket ---------------------------------------------------------------------------

  function socketUrl() {
    var scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + window.location.host + '/chat/ws';
  }

  function isOpen() {
    return socket !== null && socket.readyState === 1;
  }

  function sendFrame(frame) {
    if (!isOpen()) {
      return false;
    }
    try {
      socket.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      return false;
    }
  }

  function connect() {
    if (stopped || socket !== null) {
      return;
    }
    if (retryTimer !== null) {
      window.clearTimeout(retryTimer);
      retryTimer = null;
    }
    setStatus(everConnected ? label('reconnecting') : label('connecting'));
    var ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    connection += 1;
    var mine = connection;
    socket = ws;
    ws.addEventListener('open', function () {
      if (mine !== connection) {
        return;
      }
      helloToken = loadToken();
      sendFrame({ type: 'hello', token: helloToken, lang: lang });
    });
    ws.addEventListener('message', function (event) {
      if (mine !== connection) {
        return;
      }
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (frame && typeof frame === 'object') {
        handleFrame(frame, mine);
      }
    });
    ws.addEventListener('close', function (event) {
      if (mine !== connection) {
        return;
      }
      socketGone();
      if (event.code === TOO_MANY_NEW_CHATS) {
        // Too many new chats from this network (shared Wi-Fi, say): the server's notice,
        // with its 999, stays on screen, and the page waits a minute before trying again
        // (each try would count against the same limit).
        limitedUntil = Date.now() + LIMITED_WAIT_MS;
        retryIn(LIMITED_WAIT_MS);
        return;
      }
      if (!stopped && !ended) {
        scheduleReconnect();
      }
    });
  }

  function socketGone() {
    socket = null;
    ready = false;
    setTyping(false);
  }

  function retryIn(delay) {
    if (retryTimer === null) {
      retryTimer = window.setTimeout(function () {
        retryTimer = null;
        connect();
      }, delay);
    }
  }

  function scheduleReconnect() {
    if (stopped || retryTimer !== null) {
      return;
    }
    attempt += 1;
    var base = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, attempt - 1));
    var delay = base / 2 + Math.random() * (base / 2);
    setStatus(navigator.onLine === false ? label('offline') : label('reconnecting'));
    markAllPending();
    retryIn(delay);
  }

  function reconnectNow() {
    if (stopped || ended || socket !== null || Date.now() < limitedUntil) {
      return;
    }
    if (retryTimer !== null) {
      window.clearTimeout(retryTimer);
      retryTimer = null;
    }
    connect();
  }

  function markAllPending() {
    for (var i = 0; i < outbox.length; i += 1) {
      markPending(outbox[i], true);
    }
  }

  // ---- sending ------------------------------------------------------------------------------

  function transmit(entry) {
    if (ready && sendFrame({ type: 'message', text: entry.text, id: entry.id })) {
      entry.conn = connection;
      markPending(entry, false);
      expectAnswer(entry.conn);
    } else {
      entry.conn = 0;
      markPending(entry, true);
    }
  }

  function flushOutbox() {
    for (var i = 0; i < outbox.length; i += 1) {
      transmit(outbox[i]);
    }
  }

  // The server answers every message at once ("typing", then the reply). A connection that
  // died without closing (a phone changing network, a frozen proxy) can look open for
  // minutes: if nothing comes back within ACK_TIMEOUT_MS of a message, that socket is given
  // up, the message is marked "Not sent yet" and sent again on a new one.
  function expectAnswer(conn) {
    window.setTimeout(function () {
      var waiting = outbox.some(function (entry) {
        return entry.conn === conn;
      });
      if (waiting && conn === connection && socket !== null) {
        dropSocket();
      }
    }, ACK_TIMEOUT_MS);
  }

  function dropSocket() {
    var dead = socket;
    connection += 1; // its events, if any ever come, are ignored
    socketGone();
    try {
      dead.close();
    } catch (e) {
      // already closing
    }
    if (!stopped && !ended) {
      scheduleReconnect();
    }
  }

  // An older server (no acks): a reply on the socket a message went out on stands for it.
  function confirmSent(conn) {
    outbox = outbox.filter(function (entry) {
      return entry.conn !== conn;
    });
  }

  function outboxEntry(id) {
    for (var i = 0; i < outbox.length; i += 1) {
      if (outbox[i].id === id) {
        return outbox[i];
      }
    }
    return null;
  }

  // The server stored it (or had already): it need not go again.
  function acknowledge(id) {
    dropFromOutbox(outboxEntry(id));
  }

  // The server did not store it (too many at once, its database failing): "Not sent yet",
  // and sent again, with the same id, after the wait the server names.
  function refused(id, retryAfter) {
    var entry = outboxEntry(id);
    if (!entry) {
      return;
    }
    entry.conn = 0;
    markPending(entry, true);
    var wait = typeof retryAfter === 'number' && retryAfter > 0 ?
      Math.min(retryAfter * 1000, MAX_RETRY_MS) : RETRY_MS;
    if (entry.retry !== null) {
      window.clearTimeout(entry.retry);
    }
    entry.retry = window.setTimeout(function () {
      entry.retry = null;
      // Unless it went again meanwhile (a reconnect sends every unacknowledged message).
      if (outbox.indexOf(entry) !== -1 && entry.conn === 0) {
        transmit(entry);
      }
    }, wait);
  }

  function sendMessage(text) {
    if (stopped || ended || !text || !text.trim()) {
      return;
    }
    clearOptions();
    showKeepOpen(false);
    var entry = { id: newId(), text: text, conn: 0, el: null, retry: null };
    outbox.push(entry);
    addMessage('person', text, entry);
    transmit(entry);
  }

  // ---- frames from the server ----------------------------------------------------------------

  function cleanMessage(raw) {
    if (!raw || typeof raw !== 'object' || typeof raw.text !== 'string') {
      return null;
    }
    var author = AUTHORS.indexOf(raw.author) === -1 ? 'system' : raw.author;
    var options = Array.isArray(raw.options) ? raw.options.filter(function (o) {
      return typeof o === 'string' && o.length > 0;
    }) : [];
    if (raw.urgent === true) {
      urgentTexts[raw.text] = true;
    }
    return { author: author, text: raw.text, options: options };
  }

  function sameMessage(a, b) {
    return a.author === b.author && a.text === b.text;
  }

  // Bring the log in line with the server's history, announcing only what is new.
  function applyHistory(list) {
    var history = [];
    for (var k = 0; k < (list || []).length; k += 1) {
      var m = cleanMessage(list[k]);
      if (m) {
        history.push(m);
      }
    }
    var firstTime = !sawHistory;
    historyMaxId = 0;
    for (var h = 0; h < (list || []).length; h += 1) {
      var item = list[h];
      if (item && typeof item.id === 'number' && item.id > historyMaxId) {
        historyMaxId = item.id;
      }
    }
    historyAt = Date.now();
    sawHistory = true;
    ready = true;
    if (acks) {
      // The history names each of our stored messages by its id: those are shown from it,
      // once, and not sent again; every other one in the outbox is certainly not stored.
      var stored = {};
      for (var s = 0; s < (list || []).length; s += 1) {
        if (list[s] && typeof list[s].client_id === 'string') {
          stored[list[s].client_id] = true;
        }
      }
      outbox.slice().forEach(function (entry) {
        if (stored[entry.id] === true) {
          dropFromOutbox(entry);
        }
      });
    }
    var i = 0;
    var n = Math.min(shown.length, history.length);
    while (i < n && sameMessage(shown[i], history[i]) && !unsent(shown[i])) {
      i += 1;
    }
    var changed = true;
    if (firstTime && shown.length === 0 && helloToken) {
      // A reload: draw the conversation without reading it all aloud.
      if (history.length) {
        renderQuietly(history);
      }
    } else if (firstTime && shown.length === 0) {
      // A brand-new chat: its welcome is read out like any message (the only greeting a
      // screen-reader user gets).
      for (var w = 0; w < history.length; w += 1) {
        addMessage(history[w].author, history[w].text, null);
      }
    } else if (i === shown.length) {
      // Everything we show is known to the server: confirm those, add what is new.
      confirmShown(i);
      for (var j = i; j < history.length; j += 1) {
        addMessage(history[j].author, history[j].text, null);
      }
      changed = history.length > i;
    } else if (i === history.length) {
      // We show more than the history: our unsent messages (they go out again below) or
      // replies that arrived while the server was reading the history. Keep them.
      confirmShown(i);
      changed = false;
    } else {
      redrawFrom(history, i);
    }
    if (changed) {
      var last = history.length ? history[history.length - 1] : null;
      var lastShown = shown.length ? shown[shown.length - 1] : null;
      if (last && lastShown && lastShown.pending === null && sameMessage(lastShown, last) &&
          last.author !== 'person') {
        showOptions(last.options);
      } else {
        clearOptions();
      }
    }
    flushOutbox();
  }

  // A message on screen the server has not stored (when it names what it has stored): never
  // to be taken for a message of the history with the same words.
  function unsent(item) {
    return acks && item.pending !== null && outbox.indexOf(item.pending) !== -1;
  }

  function confirmShown(count) {
    for (var a = 0; a < count; a += 1) {
      dropFromOutbox(shown[a].pending);
    }
  }

  // The log and the server disagree: the server's history wins, quietly, and messages the
  // server may not have are put back after it (and resent; it drops any it already has).
  function redrawFrom(history, agreed) {
    if (acks) {
      // What is left in the outbox is not in the history (see applyHistory).
      renderQuietly(history);
      for (var o = 0; o < outbox.length; o += 1) {
        addMessage('person', outbox[o].text, outbox[o]);
        markPending(outbox[o], true);
      }
      return;
    }
    var tail = history.slice(agreed).filter(function (h) {
      return h.author === 'person';
    }).map(function (h) {
      return h.text;
    });
    renderQuietly(history);
    var keep = [];
    for (var c = 0; c < outbox.length; c += 1) {
      var at = tail.indexOf(outbox[c].text);
      if (at !== -1) {
        tail.splice(at, 1);
      } else {
        keep.push(outbox[c]);
        addMessage('person', outbox[c].text, outbox[c]);
        markPending(outbox[c], true);
      }
    }
    outbox = keep;
  }

  function isHistoryEcho(m, id) {
    if (typeof id === 'number' && id > 0 && historyMaxId > 0) {
      return id <= historyMaxId;
    }
    var last = shown.length ? shown[shown.length - 1] : null;
    return last !== null && last.pending === null && sameMessage(last, m) &&
      Date.now() - historyAt < HISTORY_OVERLAP_MS;
  }

  // The server has this message (acknowledged, or in the history): no resend, no "Not sent
  // yet".
  function dropFromOutbox(entry) {
    if (entry) {
      var at = outbox.indexOf(entry);
      if (at !== -1) {
        outbox.splice(at, 1);
      }
      if (entry.retry !== null) {
        window.clearTimeout(entry.retry);
        entry.retry = null;
      }
      markPending(entry, false);
    }
  }

  // Before closing a quiet chat the server warns (WCAG 2.2.1); one press, or any message,
  // keeps it open.
  function showKeepOpen(show) {
    if (!keepOpenButton) {
      return;
    }
    var hadFocus = keepOpenButton === document.activeElement;
    keepOpenButton.hidden = !show;
    if (hadFocus && !show) {
      field.focus({ preventScroll: true });
    }
  }

  function keepOpen() {
    sendFrame({ type: 'keepalive' });
    showKeepOpen(false);
    setStatus('');
  }

  function handleStatus(frame) {
    if (typeof frame.text === 'string' && frame.text) {
      setStatus(frame.text);
    }
    showKeepOpen(frame.state === 'idle_warning' && !ended);
    // "ended" (an idle close) keeps the chat to reread; "stopped" (the person said stop)
    // and "erased" (their data was deleted) do not.
    if (frame.state === 'erased' || frame.state === 'stopped') {
      forgetConversation();
    } else if (frame.state === 'ended') {
      if (!frame.text) {
        setStatus(label('ended'));
      }
      setEnded(true);
    } else if (frame.state === 'restarting') {
      // The server is about to restart: come back quickly once it drops us.
      attempt = 0;
    }
  }

  function handleFrame(frame, conn) {
    switch (frame.type) {
      case 'session':
        if (typeof frame.token === 'string' && frame.token) {
          saveToken(frame.token);
        }
        attempt = 0;
        everConnected = true;
        acks = frame.acks === true;
        setStatus(label('connected'));
        if (!helloToken) {
          // A brand-new conversation has no history to reconcile: send what is waiting.
          ready = true;
          flushOutbox();
        }
        break;
      case 'history':
        applyHistory(Array.isArray(frame.messages) ? frame.messages : []);
        break;
      case 'message': {
        var m = cleanMessage(frame);
        if (!m) {
          return;
        }
        setTyping(false);
        if (m.author !== 'person' && !acks) {
          confirmSent(conn);
        }
        if (isHistoryEcho(m, frame.id)) {
          // Published while the server was reading the history: it is already on screen.
          break;
        }
        addMessage(m.author, m.text, null);
        showOptions(m.author === 'person' ? [] : m.options);
        if (statusIsError) {
          // The conversation has moved on: an old error would only mislead.
          setStatus('');
        }
        break;
      }
      case 'typing':
        setTyping(frame.on === true);
        if (frame.on === true && !acks) {
          confirmSent(conn);
        }
        break;
      case 'ack':
        if (typeof frame.id === 'string') {
          acknowledge(frame.id);
        }
        break;
      case 'status':
        handleStatus(frame);
        break;
      case 'error':
        if (typeof frame.text === 'string') {
          setStatus(frame.text, true);
        }
        if (typeof frame.id === 'string') {
          refused(frame.id, frame.retry_after);
        }
        break;
      case 'language':
        // Optional: the person typed "Cymraeg" or "English"; show the page in that language.
        if ((frame.lang === 'cy' || frame.lang === 'en') && frame.lang !== lang) {
          window.location.replace(languageHref(frame.lang));
        }
        break;
      default:
        break;
    }
  }

  // ---- the page's controls --------------------------------------------------------------------

  function languageHref(code) {
    var query = new URLSearchParams();
    query.set('lang', code);
    if (embedded) {
      query.set('embed', '1');
    }
    return '/?' + query.toString();
  }

  function setUpLanguageLinks() {
    var links = document.querySelectorAll('a[data-lang]');
    for (var i = 0; i < links.length; i += 1) {
      var link = links[i];
      var code = link.getAttribute('data-lang');
      link.href = languageHref(code);
      if (code === lang) {
        link.setAttribute('aria-current', 'page');
      }
      // Replace rather than push, so the chat leaves one entry in history, not one per language.
      link.addEventListener('click', function (event) {
        if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) {
          return;
        }
        event.preventDefault();
        window.location.replace(event.currentTarget.href);
      });
    }
  }

  function wantsEnterToSend() {
    // On phones Enter makes a new line and the Send button sends; with a keyboard Enter sends.
    return window.matchMedia && window.matchMedia('(pointer: fine)').matches;
  }

  function setUpForm() {
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var text = field.value;
      if (!text.trim()) {
        field.focus();
        return;
      }
      if (ended) {
        startNewChat();
      }
      var parts = splitLong(text);
      var now = parts.slice(0, MAX_PARTS_AT_ONCE);
      for (var i = 0; i < now.length; i += 1) {
        sendMessage(now[i]);
      }
      // Nothing is dropped: what did not go yet stays in the box, and the person is told.
      field.value = parts.slice(MAX_PARTS_AT_ONCE).join('');
      if (field.value) {
        setLengthNote(label('long-rest-kept'));
      } else {
        setLengthNote(now.length > 1 ? label('long-sent') : '');
      }
      field.focus();
    });
    field.addEventListener('input', onFieldInput);
    field.addEventListener('keydown', function (event) {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && wantsEnterToSend()) {
        event.preventDefault();
        if (typeof form.requestSubmit === 'function') {
          form.requestSubmit();
        } else {
          form.dispatchEvent(new Event('submit', { cancelable: true }));
        }
      }
    });
    newChatButton.addEventListener('click', startNewChat);
    if (keepOpenButton) {
      keepOpenButton.addEventListener('click', keepOpen);
    }
  }

  function startNewChat() {
    saveToken(null);
    outbox = [];
    renderQuietly([]);
    clearOptions();
    sawHistory = false;
    ready = false;
    setEnded(false);
    attempt = 0;
    if (socket !== null) {
      var old = socket;
      socket = null;
      connection += 1;
      try {
        old.close(1000);
      } catch (e) {
        // Already closed.
      }
    }
    connect();
    field.focus();
  }

  function setUpHide() {
    var hideButton = document.getElementById('hide-chat');
    var showButton = document.getElementById('show-chat');
    var page = document.getElementById('page');
    var cover = document.getElementById('cover');
    if (!hideButton || !showButton || !page || !cover) {
      return;
    }
    hideButton.hidden = false;
    hideButton.addEventListener('click', function () {
      page.hidden = true;
      cover.hidden = false;
      hideButton.hidden = true;
      showButton.focus();
    });
    showButton.addEventListener('click', function () {
      cover.hidden = true;
      page.hidden = false;
      hideButton.hidden = false;
      scrollToEnd();
      hideButton.focus({ preventScroll: true });
    });
  }

  // Sticky bars must never hide the focused element (WCAG 2.4.11): keep the scroll padding
  // equal to their heights.
  function setUpScrollPadding() {
    var top = document.getElementById('topbar');
    var bottom = document.getElementById('composer');
    var html = document.documentElement;
    function update() {
      var stickyBottom = bottom && window.getComputedStyle(bottom).position === 'sticky';
      html.style.setProperty('--topbar-height', (top ? top.offsetHeight : 0) + 'px');
      html.style.setProperty('--composer-height', (stickyBottom ? bottom.offsetHeight : 0) + 'px');
    }
    update();
    if (window.ResizeObserver) {
      var observer = new ResizeObserver(function () {
        update();
        keepFollowing();
      });
      if (top) {
        observer.observe(top);
      }
      if (bottom) {
        observer.observe(bottom);
      }
    }
    window.addEventListener('resize', function () {
      update();
      keepFollowing();
    });
    window.addEventListener('scroll', function () {
      following = nearBottom();
    }, { passive: true });
  }

  function onQuickExit() {
    stopped = true;
    if (retryTimer !== null) {
      window.clearTimeout(retryTimer);
    }
    if (socket !== null) {
      try {
        // Tell the service on the way out (best effort: the page is leaving), so an adviser
        // is not left writing to nobody; the token this chat had is forgotten below.
        socket.send(JSON.stringify({ type: 'exit' }));
      } catch (e) {
        // Still connecting, or already closed: nothing to tell.
      }
      try {
        socket.close(1000);
      } catch (e) {
        // Already closed.
      }
      socket = null;
    }
    saveToken(null);
    while (log.firstChild) {
      log.removeChild(log.firstChild);
    }
    field.value = '';
    setLengthNote('');
  }

  // "Skip to message" moves focus itself: following its #message would add a history entry,
  // and Back after a quick exit must not return to the chat.
  function setUpSkipLink() {
    var skip = document.getElementById('skip-to-message');
    if (!skip) {
      return;
    }
    skip.addEventListener('click', function (event) {
      event.preventDefault();
      var newChat = document.getElementById('new-chat');
      if (field.offsetParent !== null) {
        field.focus();
      } else if (newChat && newChat.offsetParent !== null) {
        newChat.focus();
      }
    });
  }

  function init() {
    if (embedded) {
      document.documentElement.classList.add('embedded');
    }
    optionsBox.hidden = true;
    setUpLanguageLinks();
    setUpForm();
    setUpHide();
    setUpSkipLink();
    setUpScrollPadding();
    if (window.HelplineExit) {
      window.HelplineExit.onExit(onQuickExit);
    }
    window.addEventListener('online', function () {
      // Back online: a socket that looks open may have died with the old network.
      if (socket !== null && !stopped && !ended) {
        dropSocket();
      } else {
        reconnectNow();
      }
    });
    window.addEventListener('offline', function () {
      if (!isOpen()) {
        setStatus(label('offline'));
      }
    });
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'visible') {
        reconnectNow();
      }
    });
    // Back/forward cache: a restored page has a dead socket.
    window.addEventListener('pageshow', function (event) {
      if (event.persisted) {
        reconnectNow();
      }
    });
    connect();
  }

  init();
})();
