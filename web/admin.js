// The admin page: needs an admin session (otherwise a login prompt). Live
// stats (GET /api/v1/admin/stats every 2 s), the cooldown (PUT
// /api/v1/admin/settings), ban / unban with rollback (POST
// /api/v1/admin/ban-user, unban-user), snapshot now (POST
// /api/v1/admin/snapshot), reset the canvas after a typed confirmation
// (POST /api/v1/admin/reset-canvas). Common.js adds X-Place-CSRF to every
// state-changing request.
'use strict';
(() => {
  const P = window.Place;
  const $ = (id) => document.getElementById(id);
  let me = null, palette = [], statsTimer = 0;

  function result(id, text, kind) {
    const r = $(id);
    r.textContent = text;
    r.className = 'result ' + (kind || '');
  }

  // an admin call; a lost session (401/403) sends the page back to the login prompt
  async function call(method, path, body) {
    const r = await P.api(method, path, body);
    if (r.status === 401 || r.status === 403) {
      await gate();
    }
    return r;
  }

  async function gate() {
    const r = await P.api('GET', '/api/v1/auth/me');
    me = r.ok ? r.data : null;
    $('who').textContent = me ? me.username + (me.isGuest ? ' (guest)' : '') : '';
    $('btn-logout').hidden = !me || me.isGuest;
    const ok = !!(me && me.isAdmin);
    $('login-box').hidden = ok;
    $('admin').hidden = !ok;
    if (!ok) {
      clearInterval(statsTimer);
      statsTimer = 0;
      $('login-why').textContent = me && !me.isGuest
        ? 'You are logged in as ' + me.username + ', who is not an admin. Log in with an admin account.'
        : 'This page is for admins. Log in with an admin account.';
      return false;
    }
    if (!statsTimer) {
      loadStats();
      statsTimer = setInterval(loadStats, 2000);
      loadRecent();
      loadSettings();
    }
    return true;
  }

  // ---------------------------------------------------------------- stats
  const fmt = (n) => (n === undefined || n === null ? '–' : typeof n === 'number' ? n.toLocaleString('en') : String(n));

  async function loadStats() {
    const r = await call('GET', '/api/v1/admin/stats');
    if (!r.ok) {
      result('stats-error', r.status === 404 ? 'Stats are not available on this server yet.' : 'Stats: ' + P.errorText(r), 'error');
      return;
    }
    result('stats-error', '');
    const s = r.data;
    $('stat-pixels').textContent = fmt(s.pixelsTotal);
    $('stat-rate').textContent = typeof s.placementsPerSec === 'number' ? s.placementsPerSec.toFixed(1) : fmt(s.placementsPerSec);
    $('stat-active').textContent = fmt(s.activeUsers5m);
    $('stat-conns').textContent = fmt(s.connections);
    $('stat-lag').textContent = fmt(s.sinkLagMs);
    $('stat-instance').textContent = fmt(s.instance);
    $('stats-time').textContent = '· ' + new Date().toLocaleTimeString();
    const tb = $('stat-instances').tBodies[0];
    tb.textContent = '';
    for (const [name, n] of Object.entries(s.connectionsByInstance || {}))
      tb.append(P.el('tr', {}, P.el('td', {text: name}), P.el('td', {text: fmt(n)})));
    const bars = $('stat-colours');
    bars.textContent = '';
    const by = s.pixelsByColor || [];
    const max = Math.max(1, ...by);
    by.forEach((n, i) => {
      const b = P.el('span', {title: (palette[i] || 'colour ' + i) + ': ' + fmt(n)});
      b.style.height = Math.max(1, Math.round(78 * n / max)) + 'px';
      b.style.background = palette[i] || '#999';
      bars.append(b);
    });
  }

  async function loadSettings() {
    const r = await P.api('GET', '/api/v1/canvas/info');
    if (!r.ok) return;
    palette = r.data.palette || [];
    if (document.activeElement !== $('cd-seconds'))
      $('cd-seconds').value = r.data.cooldownMs !== undefined ? r.data.cooldownMs / 1000 : r.data.cooldown;
  }

  // ---------------------------------------------------------------- cooldown
  async function saveCooldown(e) {
    e.preventDefault();
    const v = Number($('cd-seconds').value);
    $('cd-save').disabled = true;
    result('cd-result', 'saving…');
    const r = await call('PUT', '/api/v1/admin/settings', {cooldownSeconds: v});
    $('cd-save').disabled = false;
    if (r.ok) result('cd-result', 'Cooldown set to ' + (r.data && r.data.cooldownSeconds !== undefined ? r.data.cooldownSeconds : v) + ' s.', 'ok');
    else result('cd-result', 'Not saved: ' + P.errorText(r), 'error');
  }

  // ---------------------------------------------------------------- ban
  async function ban(e) {
    e.preventDefault();
    const userId = $('ban-user').value.trim().toLowerCase();
    const rollbackSeconds = Number($('ban-rollback').value);
    const body = {userId};
    if (rollbackSeconds > 0) body.rollbackSeconds = rollbackSeconds;
    $('ban-btn').disabled = true;
    result('ban-result', 'banning…');
    const r = await call('POST', '/api/v1/admin/ban-user', body);
    $('ban-btn').disabled = false;
    if (r.ok) {
      const n = r.data && typeof r.data.restored === 'number' ? r.data.restored : 0;
      result('ban-result', 'Banned ' + userId + (rollbackSeconds > 0 ? '; ' + n + ' pixel' + (n === 1 ? '' : 's') + ' restored.' : '.'), 'ok');
      loadRecent();
    } else {
      result('ban-result', 'Not banned: ' + P.errorText(r), 'error');
    }
  }

  async function unban() {
    const userId = $('ban-user').value.trim().toLowerCase();
    if (!userId) { result('ban-result', 'Enter a user id.', 'error'); return; }
    result('ban-result', 'unbanning…');
    const r = await call('POST', '/api/v1/admin/unban-user', {userId});
    if (r.ok) result('ban-result', 'Unbanned ' + userId + '.', 'ok');
    else result('ban-result', 'Not unbanned: ' + P.errorText(r), 'error');
  }

  async function loadRecent() {
    const r = await P.api('GET', '/api/v1/history/recent?limit=15');
    const tb = $('recent').tBodies[0];
    tb.textContent = '';
    if (!r.ok) { tb.append(P.el('tr', {}, P.el('td', {colspan: 5, text: 'unavailable: ' + P.errorText(r)}))); return; }
    for (const ev of r.data.events || []) {
      const pick = P.el('button', {type: 'button', class: 'link', text: ev.username ? ev.username + ' · ' + ev.userId : ev.userId,
        onclick: () => { $('ban-user').value = ev.userId; $('ban-user').focus(); }});
      const sw = P.el('span', {class: 'swatch'});
      sw.style.background = palette[ev.color] || '#999';
      tb.append(P.el('tr', {},
        P.el('td', {text: ev.seq}),
        P.el('td', {}, P.el('a', {href: '/#x=' + ev.x + '&y=' + ev.y + '&z=16&sel=' + ev.x + ',' + ev.y, text: ev.x + ', ' + ev.y})),
        P.el('td', {}, sw),
        P.el('td', {}, pick),
        P.el('td', {class: 'muted', text: P.when(ev.createdAt)})));
    }
    if (!tb.children.length) tb.append(P.el('tr', {}, P.el('td', {colspan: 5, class: 'muted', text: 'no placements yet'})));
  }

  // ---------------------------------------------------------------- canvas
  async function snapshot() {
    $('snap-btn').disabled = true;
    result('canvas-result', 'requesting a snapshot…');
    const r = await call('POST', '/api/v1/admin/snapshot', {});
    $('snap-btn').disabled = false;
    if (r.ok) result('canvas-result', 'Snapshot requested (job ' + (r.data && r.data.jobId) + '); it appears on the timelapse page when done.', 'ok');
    else result('canvas-result', 'No snapshot: ' + P.errorText(r), 'error');
  }

  function askReset() {
    const d = $('reset-dialog');
    $('reset-confirm-text').value = '';
    $('reset-confirm').disabled = true;
    d.returnValue = '';
    d.showModal();
    $('reset-confirm-text').focus();
  }

  async function reset() {
    result('canvas-result', 'resetting…');
    const r = await call('POST', '/api/v1/admin/reset-canvas', {});
    if (r.ok) result('canvas-result', 'Canvas reset (seq ' + (r.data && r.data.seq) + ').', 'ok');
    else result('canvas-result', 'Not reset: ' + P.errorText(r), 'error');
  }

  async function main() {
    $('btn-login').onclick = async () => {
      const u = await P.authDialog('login');
      if (u) await gate();
    };
    $('btn-logout').onclick = async () => { await P.logout(); await gate(); };
    $('cd-form').onsubmit = saveCooldown;
    $('ban-form').onsubmit = ban;
    $('unban-btn').onclick = unban;
    $('recent-refresh').onclick = loadRecent;
    $('snap-btn').onclick = snapshot;
    $('reset-btn').onclick = askReset;
    $('reset-confirm-text').oninput = () => {
      $('reset-confirm').disabled = $('reset-confirm-text').value.trim() !== 'RESET';
    };
    $('reset-dialog').addEventListener('close', () => {
      if ($('reset-dialog').returnValue === 'reset' && $('reset-confirm-text').value.trim() === 'RESET') reset();
    });
    const r = await P.api('GET', '/api/v1/canvas/info');
    if (r.ok) palette = r.data.palette || [];
    await gate();
  }

  main();
})();
