/*
 * The statistics page: reads /console/api/stats (counts of 1-4 already replaced by "<5", and
 * totals over hidden months by "N+", on the server) and shows each dimension as a table with
 * a plain SVG bar chart beside it.
 * Words come from the data-label-* attributes the server filled from content/messages.
 */
(function () {
  'use strict';

  var root = document.getElementById('stats');
  if (!root) {
    return;
  }
  var SVG = 'http://www.w3.org/2000/svg';
  var DIMENSIONS = ['channel', 'journey', 'outcome', 'language', 'risk', 'hour', 'weekday', 'area'];

  var dom = window.helplineDom(root);
  var $ = dom.$;
  var label = dom.label;
  var el = dom.el;
  var clear = dom.clear;

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (key) {
      node.setAttribute(key, String(attrs[key]));
    });
    if (text !== undefined) {
      node.textContent = String(text);
    }
    return node;
  }

  function valueName(dimension, value) {
    // A month whose table could not be split without giving a count away, in one row.
    if (value === 'not_broken_down') {
      return label('stats-not-broken-down');
    }
    if (dimension === 'hour') {
      return (value.length < 2 ? '0' : '') + value + ':00';
    }
    return label(dimension + '-' + value) || value;
  }

  // "120+": several months added up, some hidden; at least 120 (the rule is on the page).
  function atLeast(count) {
    var match = /^(\d+)\+$/.exec(String(count));
    return match ? Number(match[1]) : null;
  }

  function countText(count) {
    if (count === 'withheld') {
      return label('stats-withheld');
    }
    if (atLeast(count) !== null) {
      return label('stats-at-least') + ' ' + atLeast(count);
    }
    return String(count);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) {
      return label('stats-waits-too-few');
    }
    var minutes = Math.floor(seconds / 60);
    var rest = seconds % 60;
    var text = rest + ' ' + label('stats-seconds');
    return minutes ? minutes + ' ' + label('stats-minutes') + ' ' + text : text;
  }

  // ---- a table and its chart ------------------------------------------------------------

  function table(caption, headings, rows) {
    var node = el('table');
    node.appendChild(el('caption', caption));
    var head = el('tr');
    headings.forEach(function (text, i) {
      var th = el('th', text, i === headings.length - 1 ? 'count' : '');
      th.setAttribute('scope', 'col');
      head.appendChild(th);
    });
    var thead = el('thead');
    thead.appendChild(head);
    node.appendChild(thead);
    var body = el('tbody');
    rows.forEach(function (cells) {
      var tr = el('tr');
      cells.forEach(function (text, i) {
        var cell = i === 0 ? el('th', text) : el('td', text, i === cells.length - 1 ? 'count' : '');
        if (i === 0) {
          cell.setAttribute('scope', 'row');
        }
        tr.appendChild(cell);
      });
      body.appendChild(tr);
    });
    node.appendChild(body);
    return node;
  }

  // Horizontal bars; a "<5" is an outline up to 4, a withheld count has no bar at all.
  function chart(title, items) {
    var rowHeight = 18;
    var labelWidth = 130;
    var width = 420;
    var barSpace = width - labelWidth - 50;
    var height = items.length * rowHeight + 6;
    var max = 5;
    items.forEach(function (item) {
      var size = typeof item.count === 'number' ? item.count : atLeast(item.count);
      if (size !== null && size > max) {
        max = size;
      }
    });
    var node = svg('svg', {
      viewBox: '0 0 ' + width + ' ' + height,
      class: 'chart',
      role: 'img',
      'aria-label': title + '. ' + label('stats-chart-label')
    });
    items.forEach(function (item, i) {
      var y = i * rowHeight + 3;
      var name = item.name.length > 22 ? item.name.slice(0, 21) + '…' : item.name;
      node.appendChild(svg('text', { x: labelWidth - 6, y: y + 12, 'text-anchor': 'end' }, name));
      var size = typeof item.count === 'number' ? item.count : atLeast(item.count);
      if (size !== null) {
        // An "at least" count draws its known part; the "+" after it says there is more.
        var w = Math.max(size ? 1 : 0, Math.round((size / max) * barSpace));
        node.appendChild(svg('rect', { x: labelWidth, y: y, width: w, height: rowHeight - 5, class: 'bar' }));
        node.appendChild(svg('text', { x: labelWidth + w + 4, y: y + 12 }, item.count));
      } else {
        var outline = item.count === '<5' ? Math.max(2, Math.round((4 / max) * barSpace)) : 0;
        if (outline) {
          node.appendChild(svg('rect', { x: labelWidth, y: y, width: outline, height: rowHeight - 5, class: 'small' }));
        }
        node.appendChild(svg('text', { x: labelWidth + outline + 4, y: y + 12 }, countText(item.count)));
      }
    });
    node.appendChild(svg('line', { x1: labelWidth, y1: 0, x2: labelWidth, y2: height, class: 'axis' }));
    return node;
  }

  function figure(dimension, rows) {
    var heading = label('stats-heading-' + dimension);
    var section = el('section', null, 'panel');
    var id = 'heading-' + dimension;
    var h2 = el('h2', heading);
    h2.id = id;
    section.setAttribute('aria-labelledby', id);
    section.appendChild(h2);
    if (!rows.length) {
      section.appendChild(el('p', label('stats-empty'), 'empty'));
      return section;
    }
    var items = rows.map(function (row) {
      return { name: valueName(dimension, row.value), count: row.count };
    });
    var box = el('div', null, 'figure');
    box.appendChild(
      table(
        heading,
        [label('stats-column-' + dimension), label('stats-count')],
        items.map(function (item) {
          return [item.name, countText(item.count)];
        })
      )
    );
    box.appendChild(chart(heading, items));
    section.appendChild(box);
    return section;
  }

  // ---- the page -------------------------------------------------------------------------

  function show(report) {
    $('contacts').textContent = countText(report.contacts);
    var waits = $('waits');
    clear(waits);
    [
      ['stats-waits-claimed', countText(report.waits.claimed)],
      ['stats-waits-median', duration(report.waits.median_seconds)],
      ['stats-waits-p90', duration(report.waits.p90_seconds)]
    ].forEach(function (pair) {
      waits.appendChild(el('dt', label(pair[0])));
      waits.appendChild(el('dd', pair[1]));
    });
    var tables = $('tables');
    clear(tables);
    DIMENSIONS.forEach(function (dimension) {
      tables.appendChild(figure(dimension, report.tables[dimension] || []));
    });
    var referrals = $('referrals');
    clear(referrals);
    if (!report.referrals.length) {
      referrals.appendChild(el('p', label('stats-empty'), 'empty'));
    } else {
      referrals.appendChild(
        table(
          label('stats-heading-referrals'),
          [label('stats-column-programme'), label('stats-column-status'), label('stats-count')],
          report.referrals.map(function (row) {
            return [row.programme, valueName('status', row.status), countText(row.count)];
          })
        )
      );
    }
  }

  function query() {
    var params = [];
    ['from', 'to'].forEach(function (name) {
      var value = $(name).value;
      if (value) {
        params.push(name + '=' + encodeURIComponent(value));
      }
    });
    return params.length ? '?' + params.join('&') : '';
  }

  function load() {
    var q = query();
    // The CSV's last row states the suppression rule, in the page's language.
    var lang = root.getAttribute('data-lang') === 'cy' ? (q ? '&' : '?') + 'lang=cy' : '';
    $('download').setAttribute('href', '/console/api/stats.csv' + q + lang);
    $('status').textContent = '';
    window
      .fetch('/console/api/stats' + q, { credentials: 'same-origin' })
      .then(function (resp) {
        if (resp.status === 401) {
          $('status').textContent = label('stats-login-needed');
          return null;
        }
        if (resp.status === 403) {
          $('status').textContent = label('stats-refused');
          return null;
        }
        if (resp.status === 400) {
          $('status').textContent = label('stats-bad-period');
          return null;
        }
        if (!resp.ok) {
          throw new Error('status ' + resp.status);
        }
        return resp.json();
      })
      .then(function (report) {
        if (report) {
          show(report);
        }
      })
      .catch(function () {
        $('status').textContent = label('stats-error');
      });
  }

  $('period').addEventListener('submit', function (event) {
    event.preventDefault();
    load();
  });
  load();
})();
