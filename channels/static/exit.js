/*
 * Quick exit ("Exit this page", the GOV.UK pattern), shared by the web chat and the adviser
 * console. Leaves for a neutral site with location.replace so Back does not return here.
 *
 * Markup: any element with `data-helpline-exit` and `data-exit-url="<neutral site>"` (a link
 * with role="button", so it still works without JavaScript). Optional words, all from content:
 * data-label-shift-2, data-label-shift-1, data-label-loading, data-label-expired.
 * Triggers: activating that control, the Escape key, or Shift pressed 3 times within 5 seconds;
 * in the widget's frame also a {"type": "helpline:exit-request"} message from the host page.
 * A control with data-exit-escape="off" (the staff console's: there Escape closes pickers and
 * must never throw away a reply being typed) leaves Escape alone on its page.
 * Pages register clean-up (close sockets, wipe the screen) with HelplineExit.onExit(fn).
 * On exit every sessionStorage key starting "helpline." is removed.
 */
(function () {
  'use strict';

  var DEFAULT_URL = 'https://www.bbc.co.uk/weather';
  var STORAGE_PREFIX = 'helpline.';
  var SHIFT_PRESSES = 3;
  var SHIFT_WINDOW_MS = 5000;

  var controls = [];
  var hooks = [];
  var exiting = false;
  var shiftCount = 0;
  var shiftTimer = null;
  var shiftModified = false;
  var announcer = null;
  var escapeExits = true;

  function label(name) {
    var control = controls[0];
    return (control && control.getAttribute('data-label-' + name)) || '';
  }

  function safeUrl(raw) {
    if (raw && raw.indexOf('{{') === -1) {
      try {
        var url = new URL(raw, window.location.href);
        if (url.protocol === 'https:' || url.protocol === 'http:') {
          return url.href;
        }
      } catch (e) {
        // Not a URL: fall through to the default.
      }
    }
    return DEFAULT_URL;
  }

  function exitUrl() {
    return safeUrl(controls[0] && controls[0].getAttribute('data-exit-url'));
  }

  function isFramed() {
    try {
      return window.top !== window.self;
    } catch (e) {
      return true;
    }
  }

  function clearStorage() {
    try {
      var store = window.sessionStorage;
      for (var i = store.length - 1; i >= 0; i -= 1) {
        var key = store.key(i);
        if (key && key.indexOf(STORAGE_PREFIX) === 0) {
          store.removeItem(key);
        }
      }
    } catch (e) {
      // Storage can be blocked (privacy settings, sandboxed frames): nothing was kept then.
    }
  }

  // Styles are set through the CSSOM (allowed by our Content-Security-Policy) so that the
  // console page, which has its own stylesheet, gets the same behaviour.
  function hideEverything() {
    var body = document.body;
    if (!body) {
      return;
    }
    for (var i = 0; i < body.children.length; i += 1) {
      body.children[i].hidden = true;
      body.children[i].style.display = 'none';
    }
    var cover = document.createElement('div');
    cover.setAttribute('role', 'status');
    cover.textContent = label('loading');
    var s = cover.style;
    s.position = 'fixed';
    s.top = '0';
    s.right = '0';
    s.bottom = '0';
    s.left = '0';
    s.zIndex = '2147483647';
    s.background = '#ffffff';
    s.color = '#0b0c0c';
    s.padding = '1rem';
    s.font = '1.25rem/1.5 system-ui, sans-serif';
    body.appendChild(cover);
    document.title = label('loading') || ' ';
  }

  function leave(url) {
    if (isFramed()) {
      // Inside the widget's frame: ask the host page (widget.js) to leave, and try to replace
      // the top page ourselves too. If neither works, at least this frame leaves the chat.
      try {
        window.parent.postMessage({ type: 'helpline:exit', url: url }, '*');
      } catch (e) {
        // The host is not listening: carry on.
      }
      try {
        window.top.location.replace(url);
      } catch (e) {
        window.location.replace(url);
        return;
      }
      window.setTimeout(function () {
        window.location.replace(url);
      }, 600);
      return;
    }
    window.location.replace(url);
  }

  function exit() {
    if (exiting) {
      return;
    }
    exiting = true;
    var url = exitUrl();
    for (var i = 0; i < hooks.length; i += 1) {
      try {
        hooks[i]();
      } catch (e) {
        // A failing clean-up must never stop the person leaving.
      }
    }
    clearStorage();
    hideEverything();
    leave(url);
  }

  function onExit(fn) {
    if (typeof fn === 'function') {
      hooks.push(fn);
    }
  }

  function announce(text) {
    if (announcer) {
      announcer.textContent = text || '';
    }
  }

  function makeAnnouncer() {
    var el = document.createElement('div');
    el.setAttribute('aria-live', 'polite');
    el.className = 'visually-hidden';
    var s = el.style;
    s.position = 'absolute';
    s.width = '1px';
    s.height = '1px';
    s.margin = '-1px';
    s.padding = '0';
    s.overflow = 'hidden';
    s.clip = 'rect(0 0 0 0)';
    s.whiteSpace = 'nowrap';
    s.border = '0';
    document.body.appendChild(el);
    return el;
  }

  function setShiftCount(count) {
    shiftCount = count;
    for (var i = 0; i < controls.length; i += 1) {
      if (count > 0) {
        controls[i].setAttribute('data-shift-count', String(count));
      } else {
        controls[i].removeAttribute('data-shift-count');
      }
    }
  }

  function shiftExpired() {
    shiftTimer = null;
    if (shiftCount > 0 && !exiting) {
      announce(label('expired'));
    }
    setShiftCount(0);
  }

  function countShift() {
    if (shiftTimer === null) {
      shiftTimer = window.setTimeout(shiftExpired, SHIFT_WINDOW_MS);
    }
    setShiftCount(shiftCount + 1);
    var left = SHIFT_PRESSES - shiftCount;
    if (left <= 0) {
      window.clearTimeout(shiftTimer);
      shiftTimer = null;
      setShiftCount(0);
      announce(label('loading'));
      exit();
    } else {
      announce(label('shift-' + left));
    }
  }

  function resetShift() {
    if (shiftTimer !== null) {
      window.clearTimeout(shiftTimer);
      shiftTimer = null;
    }
    setShiftCount(0);
  }

  function onKeyDown(event) {
    if (event.key === 'Escape' || event.key === 'Esc') {
      if (escapeExits && !event.isComposing) {
        event.preventDefault();
        exit();
      }
      return;
    }
    if (event.key === 'Shift') {
      return;
    }
    // Any other key (a capital letter typed with Shift, say) breaks the sequence.
    shiftModified = shiftModified || event.shiftKey;
    if (shiftCount > 0) {
      resetShift();
    }
  }

  function onKeyUp(event) {
    if (event.key !== 'Shift') {
      return;
    }
    if (shiftModified) {
      shiftModified = false;
      return;
    }
    countShift();
  }

  // The widget (widget.js on the host page) asks for a quick exit when Escape is pressed on
  // its own bar, outside this frame: leave exactly as from here.
  function onMessage(event) {
    var data = event.data;
    if (isFramed() && event.source === window.parent && data && data.type === 'helpline:exit-request') {
      exit();
    }
  }

  function bindControl(control) {
    controls.push(control);
    control.addEventListener('click', function (event) {
      event.preventDefault();
      exit();
    });
    // A link with role="button" must also answer the Space key, as a button does.
    control.addEventListener('keydown', function (event) {
      if (event.key === ' ' || event.key === 'Spacebar') {
        event.preventDefault();
        exit();
      }
    });
  }

  function init() {
    var found = document.querySelectorAll('[data-helpline-exit]');
    for (var i = 0; i < found.length; i += 1) {
      bindControl(found[i]);
      if (found[i].getAttribute('data-exit-escape') === 'off') {
        escapeExits = false;
      }
    }
    announcer = makeAnnouncer();
    document.addEventListener('keydown', onKeyDown, true);
    document.addEventListener('keyup', onKeyUp, true);
    window.addEventListener('message', onMessage);
  }

  window.HelplineExit = { exit: exit, onExit: onExit, url: exitUrl };

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
