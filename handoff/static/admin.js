/*
 * The admin page: the content version and directory checks, and opening hours. Reads
 * /console/api/admin; changes are POSTed with the session's CSRF token (from /console/api/me).
 * Words come from the data-label-* attributes the server filled from content/messages.
 */
(function () {
  'use strict';

  var root = document.getElementById('admin');
  if (!root) {
    return;
  }
  var DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
  var csrf = '';
  var view = null;

  var dom = window.helplineDom(root);
  var $ = dom.$;
  var label = dom.label;
  var el = dom.el;
  var clear = dom.clear;
  var status = dom.status;

  function queueName(queue) {
    return queue || label('admin-all-queues');
  }

  function when(text) {
    return (text || '').replace('T', ' ');
  }

  function call(method, path, body) {
    return dom.call(method, path, body, csrf);
  }

  function failed(result) {
    if (result.status === 401) {
      status(label('stats-login-needed'));
    } else if (result.status === 403) {
      status(label('admin-refused'));
    } else if (result.status === 400) {
      status(label('admin-invalid'));
    } else {
      status(label('stats-error'));
    }
  }

  function fact(list, name, value) {
    list.appendChild(el('dt', name));
    list.appendChild(el('dd', value === null || value === undefined ? '' : value));
  }

  function option(select, value, text) {
    var node = el('option', text);
    node.value = value;
    select.appendChild(node);
  }

  // ---- showing ---------------------------------------------------------------------------

  function showContent() {
    var facts = $('content-facts');
    clear(facts);
    fact(facts, label('admin-content-version'), view.content_version);
    fact(facts, label('admin-directory-checked'), view.directory.checked_on);
    fact(facts, label('admin-directory-oldest'), view.directory.oldest_check);
    fact(facts, label('admin-directory-stale'), view.directory.stale.length);
    fact(facts, label('admin-directory-unconfirmed'), view.directory.unconfirmed);
    var stale = $('stale');
    clear(stale);
    view.directory.stale.forEach(function (entry) {
      stale.appendChild(el('li', entry));
    });
  }

  function showStatus() {
    var list = $('open-now');
    clear(list);
    view.status.forEach(function (item) {
      var text = label('admin-open-now');
      if (!item.open) {
        // No opening within the next 400 days (closures one after another): no date to give.
        text = item.opens ? label('admin-closed-until') + ' ' + when(item.opens) : label('admin-closed-no-opening');
      }
      fact(list, item.queue, text);
    });
  }

  function showClosures() {
    var list = $('closures');
    clear(list);
    if (!view.closures.length) {
      list.appendChild(el('li', label('admin-closures-empty'), 'empty'));
    }
    view.closures.forEach(function (closure) {
      var item = el('li');
      var text = when(closure.from) + ' – ' + when(closure.to) + ' · ' + queueName(closure.queue);
      if (closure.name) {
        text += ' · ' + closure.name;
      }
      item.appendChild(el('span', text + ' (' + label('admin-by') + ' ' + closure.by + ') '));
      var button = el('button', label('admin-remove'), 'quiet');
      button.type = 'button';
      button.setAttribute('aria-label', label('admin-remove') + ': ' + text);
      button.addEventListener('click', function () {
        change('/console/api/admin/overrides/' + closure.id + '/remove', {});
      });
      item.appendChild(button);
      list.appendChild(item);
    });
    var select = $('close-queue');
    var chosen = select.value;
    while (select.options.length > 1) {
      select.remove(1);
    }
    view.queues.forEach(function (queue) {
      option(select, queue, queue);
    });
    select.value = chosen;
  }

  function weeklyFor(queue) {
    for (var i = 0; i < view.weekly.length; i += 1) {
      if (view.weekly[i].queue === queue) {
        return view.weekly[i];
      }
    }
    return null;
  }

  function showWeekly() {
    var select = $('weekly-queue');
    var chosen = select.value;
    clear(select);
    view.weekly.forEach(function (entry) {
      option(select, entry.queue, entry.queue);
    });
    if (chosen && weeklyFor(chosen)) {
      select.value = chosen;
    }
    fillWeek();
  }

  function fillWeek() {
    var entry = weeklyFor($('weekly-queue').value);
    if (!entry) {
      return;
    }
    DAYS.forEach(function (day) {
      $('day-' + day).value = (entry.weekly[day] || []).join(', ');
    });
    $('weekly-changed').hidden = !entry.override;
  }

  function load() {
    return call('GET', '/console/api/admin').then(function (result) {
      if (result.status !== 200) {
        failed(result);
        return;
      }
      view = result.data;
      showContent();
      showStatus();
      showClosures();
      showWeekly();
    });
  }

  // ---- changing --------------------------------------------------------------------------

  function change(path, body) {
    return call('POST', path, body).then(function (result) {
      if (result.status !== 200) {
        failed(result);
        return false;
      }
      status(label('admin-saved'));
      return load().then(function () {
        return true;
      });
    });
  }

  $('close-form').addEventListener('submit', function (event) {
    event.preventDefault();
    change('/console/api/admin/closures', {
      from: $('close-from').value,
      to: $('close-to').value,
      queue: $('close-queue').value,
      name: $('close-name').value
    }).then(function (done) {
      if (done) {
        $('close-form').reset();
      }
    });
  });

  $('weekly-queue').addEventListener('change', fillWeek);

  $('weekly-form').addEventListener('submit', function (event) {
    event.preventDefault();
    var weekly = {};
    DAYS.forEach(function (day) {
      weekly[day] = $('day-' + day).value;
    });
    change('/console/api/admin/weekly', { queue: $('weekly-queue').value, weekly: weekly });
  });

  $('weekly-restore').addEventListener('click', function () {
    var entry = weeklyFor($('weekly-queue').value);
    if (entry && entry.override) {
      change('/console/api/admin/overrides/' + entry.override + '/remove', {});
    }
  });

  call('GET', '/console/api/me').then(function (result) {
    if (result.status !== 200) {
      failed(result);
      return;
    }
    csrf = result.data.csrf;
    load();
  });
})();
