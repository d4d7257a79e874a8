/*
 * Embeddable chat launcher for an operator's own site:
 *   <script src="https://helpline.example/static/widget.js" data-helpline-lang="en" defer></script>
 * Adds a button that opens the chat (the helpline's own page, in an iframe) in a panel.
 * Its words come from GET <helpline>/chat/widget.json?lang=xx ({"open", "close", "title"?,
 * "exit"?: the neutral site the quick exit goes to if the chat cannot answer});
 * without them no launcher is shown. Quick exit inside the chat asks this page (postMessage)
 * to leave for the neutral site with location.replace, so Back does not return here; Escape on
 * the widget's own bar asks the chat for that same quick exit. While open the panel is modal:
 * keyboard focus stays in it.
 * No cookies, no storage, no third parties; styles are set through the CSSOM inside a shadow
 * root, so the host page's CSS cannot break the widget and a strict CSP on the host still works.
 * Protocol and set-up: docs/webchat.md.
 */
(function () {
  'use strict';

  var script = document.currentScript;
  if (!script || !script.src || window.__helplineWidget) {
    return;
  }
  window.__helplineWidget = true;

  var ORIGIN = new URL(script.src, window.location.href).origin;
  var LANG = script.getAttribute('data-helpline-lang') === 'cy' ? 'cy' : 'en';
  var SMALL_SCREEN = '(max-width: 480px), (max-height: 560px)';
  var ACCENT = '#0e5a66';
  var FOCUS_RING = '0 0 0 3px #ffdd00, 0 0 0 6px #0b0c0c';
  var TOP = '2147483000';

  var EXIT_FALLBACK_MS = 2000;

  var host = null;
  var launcher = null;
  var panel = null;
  var frame = null;
  var closeButton = null;
  var leaving = false;
  var exitUrl = 'about:blank'; // the neutral site, once widget.json has named it
  var exitFallback = null; // quickExit's timer, until the chat answers

  function css(el, styles) {
    for (var name in styles) {
      if (Object.prototype.hasOwnProperty.call(styles, name)) {
        el.style.setProperty(name, styles[name]);
      }
    }
    return el;
  }

  // Inline styles cannot use :focus-visible, so the focus ring is drawn from the focus events.
  function withFocusRing(el, shadow) {
    el.addEventListener('focus', function () {
      el.style.setProperty('box-shadow', FOCUS_RING);
    });
    el.addEventListener('blur', function () {
      el.style.setProperty('box-shadow', shadow || 'none');
    });
    return el;
  }

  function button(text, styles, shadow) {
    var b = document.createElement('button');
    b.type = 'button';
    b.textContent = text;
    css(b, {
      'min-height': '48px',
      padding: '10px 18px',
      border: '2px solid transparent',
      'border-radius': '24px',
      font: '600 16px/1.25 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif',
      cursor: 'pointer',
      outline: '3px solid transparent',
      'box-shadow': shadow || 'none',
      margin: '0'
    });
    css(b, styles);
    return withFocusRing(b, shadow);
  }

  function isSmall() {
    return !!(window.matchMedia && window.matchMedia(SMALL_SCREEN).matches);
  }

  function layoutPanel() {
    if (!panel) {
      return;
    }
    var fullHeight = window.CSS && CSS.supports && CSS.supports('height', '100dvh') ? '100dvh' : '100vh';
    if (isSmall()) {
      css(panel, { top: '0', left: '0', right: '0', bottom: '0', width: '100vw', height: fullHeight, 'border-radius': '0' });
    } else {
      css(panel, {
        top: 'auto',
        left: 'auto',
        right: '16px',
        bottom: '16px',
        width: 'min(420px, calc(100vw - 32px))',
        height: 'min(680px, calc(' + fullHeight + ' - 32px))',
        'border-radius': '8px'
      });
    }
  }

  function chatUrl() {
    return ORIGIN + '/?embed=1&lang=' + LANG;
  }

  // Focusing the frame before the chat has loaded focuses the blank page it replaces: once the
  // chat is there, put focus in it, unless the person has moved on (to the close button, say).
  function focusChatIfWaiting() {
    var active = document.activeElement;
    if (isOpen() && (!active || active === host || active === document.body)) {
      if (host.shadowRoot && host.shadowRoot.activeElement && host.shadowRoot.activeElement !== frame) {
        return;
      }
      frame.contentWindow.focus();
    }
  }

  function ensureFrame(title) {
    if (frame) {
      return;
    }
    frame = document.createElement('iframe');
    frame.src = chatUrl();
    frame.title = title;
    frame.setAttribute('referrerpolicy', 'no-referrer');
    // Top navigation is allowed so the chat's quick exit can replace this page even from a key press.
    frame.setAttribute('sandbox', 'allow-scripts allow-same-origin allow-forms allow-popups ' +
      'allow-popups-to-escape-sandbox allow-top-navigation');
    frame.addEventListener('load', focusChatIfWaiting);
    css(frame, { flex: '1 1 auto', width: '100%', 'min-height': '0', border: '0', display: 'block', background: '#ffffff' });
    panel.appendChild(frame);
    // Tab from the chat's last control lands here, next in this page's order, and goes round to
    // the close button: it never keeps focus, so it is hidden from screen readers.
    var wrap = document.createElement('span');
    wrap.tabIndex = 0;
    wrap.setAttribute('aria-hidden', 'true');
    wrap.addEventListener('focus', function () {
      closeButton.focus();
    });
    panel.appendChild(wrap);
  }

  function isOpen() {
    return !!panel && !panel.hidden;
  }

  // The panel is modal (aria-modal): while it is open, keyboard focus stays in it. The frame's
  // own page handles Tab inside it; from the close button, Tab and Shift+Tab go to the frame.
  function onBarKeyDown(event) {
    if (event.key === 'Escape' || event.key === 'Esc') {
      event.preventDefault();
      quickExit();
    } else if (event.key === 'Tab' && frame) {
      event.preventDefault();
      frame.focus();
    }
  }

  // Tab past the frame's last control, or a click on the page behind, brings focus back.
  function onHostFocusIn(event) {
    if (isOpen() && host && event.target !== host && !host.contains(event.target)) {
      closeButton.focus();
    }
  }

  // Escape on the widget's own bar is the same quick exit as inside the chat: the chat page
  // clears its conversation and storage and asks this page to leave (onMessage). Until it
  // answers this page is blanked; if it cannot answer, this page still goes.
  function quickExit() {
    if (leaving) {
      return;
    }
    leaving = true;
    if (document.body) {
      css(document.body, { visibility: 'hidden' });
    }
    try {
      frame.contentWindow.postMessage({ type: 'helpline:exit-request' }, ORIGIN);
    } catch (e) {
      // No chat to ask: the fallback below still leaves.
    }
    exitFallback = window.setTimeout(function () {
      window.location.replace(exitUrl);
    }, EXIT_FALLBACK_MS);
  }

  function open(words) {
    ensureFrame(words.title || words.open);
    panel.hidden = false;
    panel.style.setProperty('display', 'flex');
    launcher.setAttribute('aria-expanded', 'true');
    launcher.style.setProperty('display', 'none');
    layoutPanel();
    frame.focus();
  }

  function close() {
    panel.hidden = true;
    panel.style.setProperty('display', 'none');
    launcher.setAttribute('aria-expanded', 'false');
    launcher.style.setProperty('display', 'inline-flex');
    launcher.focus();
  }

  function safeUrl(raw) {
    try {
      var url = new URL(String(raw));
      if (url.protocol === 'https:' || url.protocol === 'http:') {
        return url.href;
      }
    } catch (e) {
      // Not a URL.
    }
    return null;
  }

  // Quick exit from inside the chat: leave now, replacing this page in history.
  function onMessage(event) {
    if (event.origin !== ORIGIN || !frame || event.source !== frame.contentWindow) {
      return;
    }
    var data = event.data;
    if (!data || data.type !== 'helpline:exit') {
      return;
    }
    var url = safeUrl(data.url);
    if (!url) {
      return;
    }
    if (document.body) {
      css(document.body, { visibility: 'hidden' });
    }
    if (exitFallback !== null) {
      window.clearTimeout(exitFallback); // leaving already: one navigation, not two
    }
    window.location.replace(url);
  }

  function build(words) {
    host = document.createElement('div');
    host.setAttribute('data-helpline-widget', '');
    var root = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host;

    launcher = button(words.open, {
      position: 'fixed',
      right: '16px',
      bottom: '16px',
      'z-index': TOP,
      display: 'inline-flex',
      'align-items': 'center',
      background: ACCENT,
      color: '#ffffff'
    }, '0 2px 8px rgba(0, 0, 0, 0.3)');
    launcher.setAttribute('aria-expanded', 'false');
    launcher.addEventListener('click', function () {
      open(words);
    });

    panel = document.createElement('div');
    panel.setAttribute('role', 'dialog');
    panel.setAttribute('aria-modal', 'true');
    panel.setAttribute('aria-label', words.title || words.open);
    panel.hidden = true;
    css(panel, {
      position: 'fixed',
      'z-index': TOP,
      display: 'none',
      'flex-direction': 'column',
      overflow: 'hidden',
      background: '#ffffff',
      color: '#1b1f23',
      'box-shadow': '0 4px 24px rgba(0, 0, 0, 0.35)'
    });

    var bar = document.createElement('div');
    css(bar, {
      display: 'flex',
      'justify-content': 'flex-end',
      padding: '8px',
      background: '#f6f5f1',
      'border-bottom': '1px solid #c9cdd1',
      flex: '0 0 auto'
    });
    closeButton = button(words.close, {
      background: '#ffffff',
      color: '#1b1f23',
      border: '2px solid #6b7178',
      'border-radius': '4px',
      'min-height': '44px',
      padding: '8px 14px'
    });
    closeButton.addEventListener('click', close);
    closeButton.addEventListener('keydown', onBarKeyDown);
    bar.appendChild(closeButton);
    panel.appendChild(bar);

    root.appendChild(launcher);
    root.appendChild(panel);
    document.body.appendChild(host);

    window.addEventListener('message', onMessage);
    document.addEventListener('focusin', onHostFocusIn);
    window.addEventListener('resize', layoutPanel);
  }

  function start() {
    var url = ORIGIN + '/chat/widget.json?lang=' + encodeURIComponent(LANG);
    window.fetch(url, { credentials: 'omit', mode: 'cors', referrerPolicy: 'no-referrer' })
      .then(function (response) {
        if (!response.ok) {
          throw new Error('widget words unavailable');
        }
        return response.json();
      })
      .then(function (data) {
        if (data && typeof data.open === 'string' && data.open && typeof data.close === 'string' && data.close) {
          if (typeof data.exit === 'string' && /^https?:\/\//i.test(data.exit)) {
            exitUrl = data.exit;
          }
          build({
            open: data.open,
            close: data.close,
            title: typeof data.title === 'string' ? data.title : ''
          });
        }
      })
      .catch(function () {
        // Without its words the widget stays away: no launcher in the wrong language or none.
      });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
