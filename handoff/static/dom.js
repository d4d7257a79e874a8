/*
 * What every console page needs to draw itself: its element, its words and safe element
 * building. Text always goes in with textContent, so markup anyone wrote stays inert.
 * Loaded before the page's own script: window.helplineDom(root) gives the helpers for a page
 * whose words are in root's data-label-* attributes.
 */
(function () {
  'use strict';

  window.helplineDom = function (root) {
    function $(id) {
      return document.getElementById(id);
    }

    function label(name) {
      return root.getAttribute('data-label-' + name) || '';
    }

    function el(tag, text, className) {
      var node = document.createElement(tag);
      if (text !== undefined && text !== null) {
        node.textContent = String(text);
      }
      if (className) {
        node.className = className;
      }
      return node;
    }

    function clear(node) {
      while (node.firstChild) {
        node.removeChild(node.firstChild);
      }
    }

    function status(text) {
      $('status').textContent = text || '';
    }

    // JSON to and from the console's API, with the session's CSRF token on every change.
    // With `timeoutMs`, a request that has not been answered by then fails (is aborted).
    function call(method, path, body, csrf, timeoutMs) {
      var options = {
        method: method,
        credentials: 'same-origin',
        headers: { Accept: 'application/json' }
      };
      if (timeoutMs && window.AbortController) {
        var controller = new window.AbortController();
        window.setTimeout(function () {
          controller.abort();
        }, timeoutMs);
        options.signal = controller.signal;
      }
      if (method !== 'GET') {
        options.headers['Content-Type'] = 'application/json';
        options.headers['X-CSRF-Token'] = csrf;
        options.body = JSON.stringify(body || {});
      }
      return window.fetch(path, options).then(function (resp) {
        return resp.json().then(
          function (data) {
            return { status: resp.status, data: data };
          },
          function () {
            return { status: resp.status, data: null };
          }
        );
      });
    }

    return { $: $, label: label, el: el, clear: clear, status: status, call: call };
  };
})();
