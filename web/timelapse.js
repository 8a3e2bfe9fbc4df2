// The timelapse page: snapshots as thumbnails (GET /api/v1/timelapse/snapshots,
// paged with `before`), a form that requests a render (POST
// /api/v1/timelapse), a progress bar while the worker renders it (GET
// /api/v1/timelapse/:id), then the animated PNG played in an <img> with a
// download link. The render's id is kept in the URL hash (#id=...), so a
// reload or a shared link comes back to it.
'use strict';
(() => {
  const P = window.Place;
  const $ = (id) => document.getElementById(id);
  let info = null, next = null, pollTimer = 0, current = null;

  // Date -> value of an <input type=datetime-local> (local time, seconds)
  function localValue(d) {
    const t = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
    return t.toISOString().slice(0, 19);
  }
  function fromLocal(v) { return new Date(v); } // parsed as local time

  function result(text, kind) {
    const r = $('tl-result');
    r.textContent = text;
    r.className = 'result ' + (kind || '');
  }

  function snapUrl(s) { return s.url || '/api/v1/timelapse/snapshot/' + encodeURIComponent(s.id); }

  async function loadSnapshots(more) {
    const q = new URLSearchParams({limit: '24'});
    if (more && next !== null && next !== undefined) q.set('before', next);
    const r = await P.api('GET', '/api/v1/timelapse/snapshots?' + q);
    if (!r.ok) {
      $('snap-note').textContent = r.status === 404 ? 'Snapshots are not available on this server yet.'
        : 'Could not load the snapshots: ' + P.errorText(r);
      return;
    }
    const list = r.data.snapshots || [];
    next = r.data.next;
    $('snap-more').hidden = !next;
    if (!more) $('thumbs').textContent = '';
    for (const s of list) {
      const when = new Date(s.createdAt);
      const fig = P.el('figure', {class: 'thumb', tabindex: '0', 'data-id': s.id, title: 'start the timelapse here'},
        P.el('img', {src: snapUrl(s), alt: 'snapshot ' + s.id, loading: 'lazy', width: s.width, height: s.height}),
        P.el('figcaption', {}, when.toLocaleString(), P.el('br'),
          'seq ' + s.seq + ' · ' + s.width + '×' + s.height + (s.sizeBytes ? ' · ' + Math.round(s.sizeBytes / 1024) + ' KB' : '')));
      const choose = () => {
        document.querySelectorAll('.thumb.chosen').forEach((t) => t.classList.remove('chosen'));
        fig.classList.add('chosen');
        $('tl-from').value = localValue(when);
        showDuration();
      };
      fig.onclick = choose;
      fig.onkeydown = (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); choose(); } };
      $('thumbs').append(fig);
    }
    $('snap-note').textContent = $('thumbs').children.length ? '' : 'No snapshots yet.';
  }

  function showDuration() {
    const frames = Number($('tl-frames').value), fps = Number($('tl-fps').value);
    const from = fromLocal($('tl-from').value), to = fromLocal($('tl-to').value);
    let t = '';
    if (frames > 0 && fps > 0) t = 'plays for ' + (frames / fps).toFixed(1) + ' s';
    if (from < to && frames > 1) t += ', one frame every ' + fmtSpan((to - from) / (frames - 1));
    $('tl-duration').textContent = t;
  }

  function fmtSpan(ms) {
    const s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    if (s < 3600) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }

  async function submit(e) {
    e.preventDefault();
    const from = fromLocal($('tl-from').value), to = fromLocal($('tl-to').value);
    if (!(from < to)) { result('"From" must be before "To".', 'error'); return; }
    const body = {from: from.toISOString(), to: to.toISOString(),
      frames: Number($('tl-frames').value), fps: Number($('tl-fps').value)};
    const scale = Number($('tl-scale').value);
    if (scale > 1) body.scale = scale;
    if ($('tl-region-on').checked) {
      body.region = {x: Number($('tl-x').value), y: Number($('tl-y').value),
        width: Number($('tl-w').value), height: Number($('tl-h').value)};
      if (info && (body.region.x + body.region.width > info.width || body.region.y + body.region.height > info.height)) {
        result('The region goes past the canvas (' + info.width + '×' + info.height + ').', 'error');
        return;
      }
    }
    $('tl-submit').disabled = true;
    result('');
    const r = await P.api('POST', '/api/v1/timelapse', body);
    $('tl-submit').disabled = false;
    if (r.status !== 202 && r.status !== 200 && r.status !== 201) {
      result(r.status === 404 ? 'Timelapses are not available on this server yet.'
        : 'Refused: ' + P.errorText(r), 'error');
      return;
    }
    track(r.data.id);
  }

  function track(id) {
    current = id;
    history.replaceState(null, '', '#id=' + encodeURIComponent(id));
    $('tl-player-box').hidden = true;
    $('tl-progress-box').hidden = false;
    $('tl-progress').value = 0;
    $('tl-status').textContent = 'queued';
    clearTimeout(pollTimer);
    poll(id, 0);
  }

  async function poll(id, failures) {
    if (id !== current) return;
    const r = await P.api('GET', '/api/v1/timelapse/' + encodeURIComponent(id));
    if (id !== current) return;
    if (!r.ok) {
      if (r.status === 404) { $('tl-status').textContent = 'no such timelapse'; result('No such timelapse: ' + id, 'error'); return; }
      $('tl-status').textContent = 'cannot reach the server (' + P.errorText(r) + '); retrying';
      pollTimer = setTimeout(() => poll(id, failures + 1), Math.min(500 * 2 ** failures, 5000));
      return;
    }
    const t = r.data;
    const pct = Math.round(100 * (t.progress || 0));
    $('tl-progress').value = t.status === 'done' ? 1 : (t.progress || 0);
    if (t.status === 'queued') $('tl-status').textContent = 'queued: waiting for a worker';
    else if (t.status === 'running') $('tl-status').textContent = 'rendering: ' + pct + ' %';
    if (t.status === 'done') {
      $('tl-status').textContent = 'done';
      result('Timelapse ready: ' + t.frames + ' frames at ' + t.fps + ' fps.', 'ok');
      play(t);
    } else if (t.status === 'failed') {
      $('tl-status').textContent = 'failed';
      result('The render failed: ' + (t.error || 'unknown error'), 'error');
    } else {
      pollTimer = setTimeout(() => poll(id, 0), 500);
    }
  }

  function play(t) {
    const url = t.url || '/api/v1/timelapse/' + encodeURIComponent(t.id) + '.png';
    const img = $('tl-player');
    img.src = url + (url.includes('?') ? '&' : '?') + 't=' + Date.now();
    $('tl-download').href = url;
    $('tl-download').setAttribute('download', 'place-timelapse-' + t.id + '.png');
    $('tl-info').textContent = t.frames + ' frames, ' + t.fps + ' fps, ' + (t.frames / t.fps).toFixed(1) + ' s';
    $('tl-player-box').hidden = false;
  }

  async function main() {
    const now = new Date();
    $('tl-to').value = localValue(new Date(now.getTime() + 60000));
    $('tl-from').value = localValue(new Date(now.getTime() - 3600000));
    $('tl-region-on').onchange = () => { $('tl-region').hidden = !$('tl-region-on').checked; };
    $('tl-form').onsubmit = submit;
    $('tl-form').oninput = showDuration;
    $('snap-more').onclick = () => loadSnapshots(true);
    $('tl-replay').onclick = () => { const i = $('tl-player'); const s = i.src; i.src = ''; i.src = s; };
    showDuration();
    P.session().then((me) => {
      if (!me) return;
      $('who').textContent = me.username + (me.isGuest ? ' (guest)' : '');
      $('admin-link').hidden = !me.isAdmin;
    });
    P.api('GET', '/api/v1/canvas/info').then((r) => {
      if (!r.ok) return;
      info = r.data;
      $('tl-x').max = info.width - 1; $('tl-y').max = info.height - 1;
      $('tl-w').max = info.width; $('tl-h').max = info.height;
    });
    await loadSnapshots(false);
    const id = new URLSearchParams(location.hash.slice(1)).get('id');
    if (id) track(id);
  }

  main();
})();
