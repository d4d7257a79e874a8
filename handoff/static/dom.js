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

    return { $: $, label: label, el: el, clear: clear, status: status };
  };
})();
