// The canvas page.
//
// Keeping the canvas exact (README "Keeping a canvas exact"): open the
// WebSocket first and buffer updates; fetch GET /api/v1/canvas (X-Canvas-Seq
// is its seq); apply the buffered updates with a larger seq, then each update
// as it comes. A seq gap, `resync` or `reset` refetches. Reconnects with
// jittered exponential backoff, re-checking the session first.
//
// Drawing: the server canvas (`truth`, one palette index per pixel) plus the
// player's own not-yet-confirmed pixels (`overlay`) are written into one
// ImageData; changed pixels are copied to an off-screen canvas once per
// animation frame, and the visible part of it is drawn, without smoothing,
// onto the on-screen canvas (device-pixel sized), so pixels stay crisp at
// every zoom. Pan by drag, zoom by wheel or pinch around the pointer.
'use strict';
(() => {
  const P = window.Place;
  const $ = (id) => document.getElementById(id);
  const vp = $('viewport');
  const view = $('view');
  const vctx = view.getContext('2d', {alpha: false});

  const MAX_ZOOM = 64;
  const TAP_SLOP = 6; // css px a press may move and still be a click/tap
  const LONG_PRESS_MS = 550;

  // ---------------------------------------------------------------- state
  let W = 0, H = 0, palette = [], palABGR = new Uint32Array(0);
  let truth = null; // Uint8Array: the server's canvas at lastSeq
  let img = null, img32 = null; // what is shown: truth + overlay
  let off = null, offctx = null; // backing canvas, W x H
  let dirty = [], dirtyAll = false, needPaint = true;
  const overlay = new Map(); // pixel index -> pending placement shown over truth
  let pending = []; // placements sent, waiting for ack/error, oldest first
  const cam = {x: 0, y: 0, z: 1}; // canvas point at the centre; css px per canvas px
  let vw = 1, vh = 1, dpr = 1;
  let me = null, banned = false;
  let colour = -1; // -1: inspect tool
  let cooldownMs = 0, cooldownUntil = 0;
  let hover = null, selected = null;

  let ws = null, wsOpen = false, lastSeq = -1, syncing = true, buffered = [], fetchGen = 0;
  let backoff = 500, attempts = 0, reconnectTimer = 0, pingTimer = 0, lastMessageAt = 0;
  let haveCanvas = false, canvasLoads = 0;

  // ---------------------------------------------------------------- messages
  let messageTimer = 0;
  function say(text, kind, ms) {
    const m = $('message');
    m.textContent = text;
    m.className = 'message ' + (kind || 'info');
    m.hidden = false;
    clearTimeout(messageTimer);
    messageTimer = setTimeout(() => { m.hidden = true; }, ms || (kind === 'error' ? 7000 : 4000));
  }

  function setConn(text, state) {
    const c = $('conn');
    c.textContent = text;
    c.className = 'conn ' + state;
    c.dataset.state = state;
  }

  const ERROR_TEXT = {
    INVALID_COORDS: 'That pixel is outside the canvas.',
    INVALID_COLOR: 'That colour is not in the palette.',
    UNAUTHORIZED: 'Your session has expired: reconnecting with a new one.',
    BANNED: 'Your account has been banned: you can still watch, but you cannot place pixels.',
    BAD_REQUEST: 'The server did not understand that request.',
    UNAVAILABLE: 'The server is busy or restarting: try again in a moment.',
  };

  function errorMessage(m) {
    if (m.code === 'RATE_LIMITED') {
      if (m.cooldownRemainingMs !== undefined || m.cooldownRemaining !== undefined) {
        const ms = m.cooldownRemainingMs !== undefined ? m.cooldownRemainingMs : m.cooldownRemaining * 1000;
        return 'Refused: cooldown active, you can place again in ' + (ms / 1000).toFixed(1) + ' s.';
      }
      return 'Refused: too many requests, slow down.';
    }
    return 'Refused: ' + (ERROR_TEXT[m.code] || (m.code + (m.message ? ': ' + m.message : '')));
  }

  // Banned stays on for the life of the page: the server revokes a banned
  // player's sessions, and the page only gets a new guest session to go on
  // watching, not to go on placing. A successful log-in clears it (the
  // server refuses banned accounts), and so does an accepted placement.
  function setBanned(on) {
    banned = on;
    const b = $('banner');
    b.hidden = !on;
    b.textContent = on ? ERROR_TEXT.BANNED : '';
    document.body.classList.toggle('banned', on);
    tick();
  }

  // ---------------------------------------------------------------- account
  function showAccount() {
    $('who').textContent = me ? me.username + (me.isGuest ? ' (guest)' : '') : '';
    $('who').title = me ? 'user id ' + me.userId : '';
    const guest = !me || me.isGuest;
    $('btn-register').hidden = !guest;
    $('btn-login').hidden = !guest;
    $('btn-logout').hidden = guest;
    $('admin-link').hidden = !(me && me.isAdmin);
  }

  function setMe(user) {
    const changed = !me || !user || me.userId !== user.userId;
    me = user;
    showAccount();
    if (changed && me) cooldownUntil = Date.now() + (me.cooldownRemaining || 0) * 1000;
  }

  async function signIn(mode) {
    const user = await P.authDialog(mode);
    if (!user) return;
    setBanned(false);
    setMe(await P.session() || user);
    say(mode === 'login' ? 'Logged in as ' + user.username + '.' : 'Welcome, ' + user.username + '!');
    reconnectNow();
  }

  async function signOut() {
    const r = await P.logout();
    if (!r.ok && r.status !== 401) { say('Could not log out: ' + P.errorText(r), 'error'); return; }
    setMe(await P.session());
    say('Logged out: you are a guest now.');
    reconnectNow();
  }

  // ---------------------------------------------------------------- pixels
  function initCanvas(ci) {
    W = ci.width; H = ci.height;
    palette = ci.palette.slice();
    // palette as 32-bit RGBA in the platform's byte order
    const bytes = new Uint8ClampedArray(4 * palette.length);
    palette.forEach((hex, i) => { bytes.set([...P.rgb(hex), 255], 4 * i); });
    palABGR = new Uint32Array(bytes.buffer);
    truth = new Uint8Array(W * H);
    off = document.createElement('canvas');
    off.width = W; off.height = H;
    offctx = off.getContext('2d', {alpha: false});
    img = offctx.createImageData(W, H);
    img32 = new Uint32Array(img.data.buffer);
    img32.fill(palABGR[0]);
    overlay.clear();
    dirtyAll = true;
    haveCanvas = false;
    buildPalette();
    fitView(!readHash());
  }

  function show(i) {
    const o = overlay.get(i);
    img32[i] = palABGR[o ? o.color : truth[i]];
    if (dirty.length < 4096) dirty.push(i); else dirtyAll = true;
    needPaint = true;
  }

  function loadCanvas(bytes, seq) {
    truth.set(bytes);
    lastSeq = seq;
    for (let i = 0; i < bytes.length; i++) img32[i] = palABGR[bytes[i]] || palABGR[0];
    for (const [i, o] of overlay) {
      if (o.seq <= lastSeq) overlay.delete(i);
      else img32[i] = palABGR[o.color];
    }
    dirtyAll = true;
    needPaint = true;
    haveCanvas = true;
    canvasLoads++;
    $('loading').hidden = true;
  }

  function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

  // Fetches the canvas, then applies what was buffered meanwhile. A newer
  // call supersedes an older one; retries while the socket is open.
  async function fetchCanvas(delay) {
    const gen = ++fetchGen;
    syncing = true;
    if (delay) {
      await sleep(delay);
      if (gen !== fetchGen || !wsOpen) return;
    }
    for (let attempt = 0; ; attempt++) {
      let wait = Math.min(500 * 2 ** attempt, 5000);
      try {
        const r = await fetch('/api/v1/canvas', {cache: 'no-store', credentials: 'same-origin'});
        if (r.status === 429) wait = 1000 * (parseInt(r.headers.get('Retry-After'), 10) || 2);
        if (!r.ok) throw new Error('HTTP ' + r.status);
        const seq = parseInt(r.headers.get('X-Canvas-Seq'), 10);
        const bytes = new Uint8Array(await r.arrayBuffer());
        if (gen !== fetchGen) return;
        if (bytes.length !== W * H || !Number.isFinite(seq)) throw new Error('unexpected canvas');
        if (seq < minSeq) { // older than a reset we were told of: the server's cache
          await sleep(300);
          if (gen !== fetchGen || !wsOpen) return;
          attempt = -1;
          continue;
        }
        loadCanvas(bytes, seq);
        syncing = false;
        const queued = buffered;
        buffered = [];
        for (const u of queued) applyUpdate(u);
        return;
      } catch (e) {
        if (gen !== fetchGen || !wsOpen) return;
        setConn('loading the canvas failed (' + e.message + '); retrying', 'warn');
        await sleep(wait * (0.75 + Math.random() / 2));
        if (gen !== fetchGen || !wsOpen) return;
        setConn('live', 'ok');
      }
    }
  }

  // delay: the server caches the encoded canvas for a moment (canvas.cache_ms),
  // so right after a gap the same stale canvas would come back; meanwhile
  // the updates are buffered, so nothing is lost by waiting
  let gapStreak = 0, minSeq = 0;
  function refetch(delay, force) {
    if (syncing && !force) return; // a fetch is under way; its buffer will catch up
    if (!syncing) buffered = [];
    fetchCanvas(delay || 0);
  }

  function applyUpdate(u) {
    if (syncing) { buffered.push(u); return; }
    if (u.seq <= lastSeq) return; // already in the canvas we have
    if (u.seq !== lastSeq + 1) { // missed something (or the canvas was older than the
      // first buffered update): start again from a newer canvas
      refetch(Math.min(300 * 2 ** gapStreak++, 5000));
      buffered.push(u);
      return;
    }
    gapStreak = 0;
    lastSeq = u.seq;
    if (u.x < 0 || u.y < 0 || u.x >= W || u.y >= H) return;
    const i = u.y * W + u.x;
    truth[i] = u.color;
    const o = overlay.get(i);
    if (o && o.seq <= u.seq) overlay.delete(i);
    show(i);
    if (selected && selected.x === u.x && selected.y === u.y) infoAddLive(u);
  }

  // ---------------------------------------------------------------- socket
  function handle(m) {
    lastMessageAt = Date.now();
    switch (m.type) {
    case 'update':
      applyUpdate(m);
      break;
    case 'welcome':
      if (m.canvasInfo && (m.canvasInfo.width !== W || m.canvasInfo.height !== H)) {
        initCanvas(m.canvasInfo);
        refetch();
      }
      if (me && m.userId && me.userId !== m.userId) me.userId = m.userId;
      cooldownMs = m.cooldownMs !== undefined ? m.cooldownMs : (m.cooldown || 0) * 1000;
      cooldownUntil = Date.now() + (m.cooldownRemainingMs !== undefined
        ? m.cooldownRemainingMs : (m.cooldownRemaining || 0) * 1000);
      break;
    case 'ack': {
      const p = takePending(m);
      if (m.cooldownMs !== undefined) cooldownMs = m.cooldownMs;
      cooldownUntil = Date.now() + cooldownMs;
      if (p) {
        p.seq = m.seq;
        const i = p.y * W + p.x;
        if (lastSeq >= p.seq && overlay.get(i) === p) { overlay.delete(i); show(i); }
      }
      $('message').hidden = true;
      break;
    }
    case 'error': {
      const p = takePending(null);
      if (p) {
        const i = p.y * W + p.x;
        if (overlay.get(i) === p) { overlay.delete(i); show(i); }
      }
      if (m.code === 'RATE_LIMITED' && (m.cooldownRemainingMs !== undefined || m.cooldownRemaining !== undefined)) {
        cooldownUntil = Date.now() + (m.cooldownRemainingMs !== undefined
          ? m.cooldownRemainingMs : m.cooldownRemaining * 1000);
      } else if (p && cooldownUntil > Date.now() && p.cooldownSet) {
        cooldownUntil = p.cooldownBefore;
      }
      if (m.code === 'BANNED') setBanned(true);
      say(errorMessage(m), 'error');
      if (m.code === 'UNAUTHORIZED') reconnectNow();
      break;
    }
    case 'settings':
      if (m.cooldownMs !== undefined) cooldownMs = m.cooldownMs;
      say('An admin set the cooldown to ' + (cooldownMs / 1000) + ' s.');
      break;
    case 'reset': // a fetch under way may bring the canvas from before it: start again
      say('An admin reset the canvas.');
      if (Number.isFinite(m.seq)) minSeq = Math.max(minSeq, m.seq);
      refetch(0, true);
      break;
    case 'resync':
      refetch(0, true);
      break;
    default:
      break; // pong and anything newer
    }
    if (m.type !== 'update') tick(); // the status line at once, not at the next tick
  }

  // the placement an ack/error answers: the oldest one (the server answers
  // a connection's placements in order), by coordinates when it says them
  function takePending(m) {
    if (!pending.length) return null;
    let k = 0;
    if (m && m.x !== undefined) {
      const j = pending.findIndex((p) => p.x === m.x && p.y === m.y && p.color === m.color);
      if (j >= 0) k = j;
    }
    return pending.splice(k, 1)[0];
  }

  function dropPending() {
    for (const p of pending) {
      const i = p.y * W + p.x;
      if (overlay.get(i) === p) { overlay.delete(i); show(i); }
    }
    pending = [];
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = 0;
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/ws';
    setConn(attempts ? 'reconnecting…' : 'connecting…', 'warn');
    syncing = true;
    buffered = [];
    fetchGen++;
    let sock;
    try { sock = new WebSocket(url); } catch (e) { scheduleReconnect(0, ''); return; }
    ws = sock;
    sock.onopen = () => {
      if (ws !== sock) return;
      wsOpen = true;
      backoff = 500;
      attempts = 0;
      lastMessageAt = Date.now();
      setConn('live', 'ok');
      fetchCanvas();
      clearInterval(pingTimer);
      pingTimer = setInterval(keepAlive, 5000);
    };
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (Array.isArray(m)) { for (const x of m) handle(x); } else handle(m);
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      wsOpen = false;
      clearInterval(pingTimer);
      dropPending();
      if (ev.code === 1008 && /ban/i.test(ev.reason)) setBanned(true);
      scheduleReconnect(ev.code, ev.reason);
    };
  }

  // a ping when quiet for 25 s; no answer within 10 s more -> reconnect
  function keepAlive() {
    if (!ws || !wsOpen) return;
    const quiet = Date.now() - lastMessageAt;
    if (quiet > 35000) { ws.close(4000, 'no answer'); return; }
    if (quiet > 25000) ws.send('{"type":"ping"}');
  }

  function scheduleReconnect(code, reason) {
    if (reconnectTimer) return;
    attempts++;
    const wait = backoff * (0.5 + Math.random());
    backoff = Math.min(backoff * 2, 15000);
    const why = code === 1001 ? 'server restarting' : code === 1008 ? (reason || 'closed by the server')
      : 'connection lost';
    setConn('offline (' + why + '); retrying in ' + (wait / 1000).toFixed(1) + ' s', 'bad');
    reconnectTimer = setTimeout(async () => {
      reconnectTimer = 0;
      // the session may be gone (server reset, expiry): check it first,
      // and do not knock while the server is unreachable
      const user = await P.session();
      if (!user) { scheduleReconnect(code, reason); return; }
      setMe(user);
      connect();
    }, wait);
  }

  function reconnectNow() {
    backoff = 500;
    if (ws) {
      const s = ws;
      ws = null;
      wsOpen = false;
      dropPending();
      s.onclose = null;
      s.close(1000, 'session changed');
    }
    clearTimeout(reconnectTimer);
    reconnectTimer = 0;
    connect();
  }

  // ---------------------------------------------------------------- placing
  function place(x, y) {
    if (banned) { say(ERROR_TEXT.BANNED, 'error'); return; }
    if (!ws || !wsOpen) { say('Not connected: your pixel was not placed. Reconnecting…', 'error'); return; }
    if (!haveCanvas) { say('The canvas is still loading.', 'error'); return; }
    const left = cooldownUntil - Date.now();
    if (left > 0) {
      say('Cooldown: you can place your next pixel in ' + (left / 1000).toFixed(1) + ' s.', 'error');
      $('cooldown').classList.remove('flash');
      void $('cooldown').offsetWidth;
      $('cooldown').classList.add('flash');
      return;
    }
    const p = {x, y, color: colour, seq: Infinity, cooldownBefore: cooldownUntil, cooldownSet: true};
    pending.push(p);
    const i = y * W + x;
    overlay.set(i, p);
    show(i); // drawn at once; reverted if the server refuses
    cooldownUntil = Date.now() + cooldownMs; // until the ack says exactly
    ws.send(JSON.stringify({type: 'place', x, y, color: colour}));
    tick();
  }

  // ---------------------------------------------------------------- view
  function clamp(v, lo, hi) { return v < lo ? lo : v > hi ? hi : v; }
  function minZoom() { return Math.min(1, 0.5 * Math.min(vw / W, vh / H)); }

  function clampCam() {
    cam.z = clamp(cam.z, minZoom(), MAX_ZOOM);
    cam.x = clamp(cam.x, 0, W);
    cam.y = clamp(cam.y, 0, H);
  }

  function fitView(reset) {
    if (!W) return;
    if (reset) {
      cam.z = Math.max(minZoom(), Math.min(vw / W, vh / H) * 0.95);
      cam.x = W / 2;
      cam.y = H / 2;
    }
    clampCam();
    viewChanged();
  }

  // device-pixel origin of the canvas on screen (rounded: crisp edges; the
  // same numbers serve drawing and pointer maths, so they always agree)
  function origin() {
    const s = cam.z * dpr;
    return {s, ox: Math.round(view.width / 2 - cam.x * s), oy: Math.round(view.height / 2 - cam.y * s)};
  }

  // canvas pixel under a point given in css px relative to the viewport
  function pixelAt(cx, cy) {
    const {s, ox, oy} = origin();
    return {x: Math.floor((cx * dpr - ox) / s), y: Math.floor((cy * dpr - oy) / s)};
  }

  function inside(p) { return p && p.x >= 0 && p.y >= 0 && p.x < W && p.y < H; }

  function zoomAt(cx, cy, factor) {
    const px = cam.x + (cx - vw / 2) / cam.z;
    const py = cam.y + (cy - vh / 2) / cam.z;
    cam.z = clamp(cam.z * factor, minZoom(), MAX_ZOOM);
    cam.x = px - (cx - vw / 2) / cam.z;
    cam.y = py - (cy - vh / 2) / cam.z;
    clampCam();
    viewChanged();
  }

  let hashTimer = 0;
  function viewChanged() {
    needPaint = true;
    clearTimeout(hashTimer);
    hashTimer = setTimeout(writeHash, 250);
  }

  function writeHash() {
    const parts = ['x=' + cam.x.toFixed(1), 'y=' + cam.y.toFixed(1), 'z=' + +cam.z.toFixed(3)];
    if (selected) parts.push('sel=' + selected.x + ',' + selected.y);
    const h = '#' + parts.join('&');
    if (location.hash !== h) history.replaceState(null, '', h);
  }

  // position, zoom and selection from the URL's hash; false when it has none
  function readHash() {
    const q = new URLSearchParams(location.hash.slice(1));
    const x = parseFloat(q.get('x')), y = parseFloat(q.get('y')), z = parseFloat(q.get('z'));
    if (!Number.isFinite(x) || !Number.isFinite(y)) return false;
    cam.x = x; cam.y = y;
    if (Number.isFinite(z) && z > 0) cam.z = z;
    clampCam();
    const sel = (q.get('sel') || '').split(',').map(Number);
    if (sel.length === 2 && inside({x: sel[0], y: sel[1]})) select(sel[0], sel[1]);
    needPaint = true;
    return true;
  }

  function resize() {
    const r = vp.getBoundingClientRect();
    dpr = window.devicePixelRatio || 1;
    vw = Math.max(1, r.width); vh = Math.max(1, r.height);
    view.width = Math.round(vw * dpr);
    view.height = Math.round(vh * dpr);
    view.style.width = vw + 'px';
    view.style.height = vh + 'px';
    if (W) clampCam();
    needPaint = true;
  }

  function frame() {
    requestAnimationFrame(frame);
    if (!off) return;
    if (dirtyAll) {
      offctx.putImageData(img, 0, 0);
      dirtyAll = false;
      dirty.length = 0;
      needPaint = true;
    } else if (dirty.length) {
      for (const i of dirty) offctx.putImageData(img, 0, 0, i % W, (i / W) | 0, 1, 1);
      dirty.length = 0;
      needPaint = true;
    }
    if (!needPaint) return;
    needPaint = false;
    const {s, ox, oy} = origin();
    vctx.setTransform(1, 0, 0, 1, 0, 0);
    vctx.fillStyle = '#cfcfcf';
    vctx.fillRect(0, 0, view.width, view.height);
    const x0 = clamp(Math.floor(-ox / s), 0, W), x1 = clamp(Math.ceil((view.width - ox) / s), 0, W);
    const y0 = clamp(Math.floor(-oy / s), 0, H), y1 = clamp(Math.ceil((view.height - oy) / s), 0, H);
    // crisp (nearest) from one device pixel per canvas pixel up; below that
    // a filtered reduction, so single pixels do not vanish from the overview
    vctx.imageSmoothingEnabled = s < 1;
    vctx.imageSmoothingQuality = 'high';
    if (x1 > x0 && y1 > y0)
      vctx.drawImage(off, x0, y0, x1 - x0, y1 - y0, ox + x0 * s, oy + y0 * s, (x1 - x0) * s, (y1 - y0) * s);
    if (s >= 12) { // pixel grid when zoomed in far
      vctx.strokeStyle = 'rgba(0,0,0,0.08)';
      vctx.lineWidth = 1;
      vctx.beginPath();
      for (let x = x0; x <= x1; x++) { const X = Math.round(ox + x * s) + 0.5; vctx.moveTo(X, oy + y0 * s); vctx.lineTo(X, oy + y1 * s); }
      for (let y = y0; y <= y1; y++) { const Y = Math.round(oy + y * s) + 0.5; vctx.moveTo(ox + x0 * s, Y); vctx.lineTo(ox + x1 * s, Y); }
      vctx.stroke();
    }
    const box = (p, style, width) => {
      const w = Math.max(s, 6 * dpr), d = (w - s) / 2;
      vctx.strokeStyle = style;
      vctx.lineWidth = width * dpr;
      vctx.strokeRect(ox + p.x * s - d, oy + p.y * s - d, w, w);
    };
    if (inside(hover) && colour >= 0) {
      vctx.fillStyle = palette[colour];
      vctx.globalAlpha = 0.6;
      vctx.fillRect(ox + hover.x * s, oy + hover.y * s, s, s);
      vctx.globalAlpha = 1;
    }
    if (inside(hover)) box(hover, 'rgba(0,0,0,0.55)', 1);
    if (inside(selected)) { box(selected, '#fff', 3); box(selected, '#000', 1.5); }
  }

  // ---------------------------------------------------------------- input
  const pointers = new Map();
  let press = null; // {id, x, y, camX, camY, moved, timer, long}
  let pinch = null; // {d, z, px, py}

  function local(e) {
    const r = vp.getBoundingClientRect();
    return {x: e.clientX - r.left, y: e.clientY - r.top};
  }

  function startPinch() {
    const [a, b] = [...pointers.values()];
    const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
    pinch = {d: Math.hypot(a.x - b.x, a.y - b.y) || 1, z: cam.z,
      px: cam.x + (mx - vw / 2) / cam.z, py: cam.y + (my - vh / 2) / cam.z};
  }

  function setHover(p) {
    const prev = hover;
    hover = inside(p) ? p : null;
    $('coords').textContent = hover ? 'x ' + hover.x + ', y ' + hover.y : 'x –, y –';
    if (!prev !== !hover || (prev && hover && (prev.x !== hover.x || prev.y !== hover.y))) needPaint = true;
  }

  vp.addEventListener('pointerdown', (e) => {
    if (e.pointerType === 'mouse' && e.button !== 0) return;
    if (e.target !== view && e.target !== vp) return; // buttons and panels over the canvas
    vp.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, local(e));
    if (pointers.size === 1) {
      const l = local(e);
      press = {id: e.pointerId, x: l.x, y: l.y, camX: cam.x, camY: cam.y, moved: false, long: false,
        timer: setTimeout(() => { // long press: inspect without placing
          if (press && !press.moved) { press.long = true; inspectAt(l.x, l.y); }
        }, LONG_PRESS_MS)};
      if (e.pointerType !== 'mouse') setHover(pixelAt(l.x, l.y));
    } else if (pointers.size === 2) {
      if (press) { clearTimeout(press.timer); press = null; }
      startPinch();
    }
  });

  vp.addEventListener('pointermove', (e) => {
    const l = local(e);
    if (e.pointerType === 'mouse' || pointers.has(e.pointerId)) setHover(pixelAt(l.x, l.y));
    if (!pointers.has(e.pointerId)) return;
    pointers.set(e.pointerId, l);
    if (pinch && pointers.size >= 2) {
      const [a, b] = [...pointers.values()];
      const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
      cam.z = clamp(pinch.z * Math.hypot(a.x - b.x, a.y - b.y) / pinch.d, minZoom(), MAX_ZOOM);
      cam.x = pinch.px - (mx - vw / 2) / cam.z;
      cam.y = pinch.py - (my - vh / 2) / cam.z;
      clampCam();
      viewChanged();
      return;
    }
    if (press && press.id === e.pointerId) {
      const dx = l.x - press.x, dy = l.y - press.y;
      if (!press.moved && Math.hypot(dx, dy) > TAP_SLOP) {
        press.moved = true;
        clearTimeout(press.timer);
        vp.classList.add('dragging');
      }
      if (press.moved) {
        cam.x = press.camX - dx / cam.z;
        cam.y = press.camY - dy / cam.z;
        clampCam();
        viewChanged();
      }
    }
  });

  function endPointer(e, cancelled) {
    if (!pointers.has(e.pointerId)) return;
    pointers.delete(e.pointerId);
    if (press && press.id === e.pointerId) {
      clearTimeout(press.timer);
      if (!cancelled && !press.moved && !press.long) {
        const l = local(e);
        tap(l.x, l.y);
      }
      press = null;
      vp.classList.remove('dragging');
    }
    if (e.pointerType !== 'mouse' && !pointers.size) { // no hover without a mouse
      hover = null;
      needPaint = true;
    }
    if (pointers.size < 2) pinch = null;
    if (pointers.size === 1) { // the finger left after a pinch pans on, never taps
      const [id, l] = [...pointers.entries()][0];
      press = {id, x: l.x, y: l.y, camX: cam.x, camY: cam.y, moved: true, long: false, timer: 0};
    }
  }
  vp.addEventListener('pointerup', (e) => endPointer(e, false));
  vp.addEventListener('pointercancel', (e) => endPointer(e, true));
  vp.addEventListener('pointerleave', (e) => { if (e.pointerType === 'mouse' && !pointers.size) setHover(null); });

  vp.addEventListener('wheel', (e) => {
    e.preventDefault();
    const l = local(e);
    const delta = e.deltaMode === 1 ? e.deltaY * 33 : e.deltaMode === 2 ? e.deltaY * 400 : e.deltaY;
    zoomAt(l.x, l.y, Math.exp(-clamp(delta, -300, 300) * 0.002));
    setHover(pixelAt(l.x, l.y));
  }, {passive: false});

  vp.addEventListener('contextmenu', (e) => {
    e.preventDefault();
    const l = local(e);
    inspectAt(l.x, l.y);
  });

  function tap(cx, cy) {
    const p = pixelAt(cx, cy);
    if (!inside(p)) return;
    if (colour < 0) { select(p.x, p.y); return; }
    place(p.x, p.y);
  }

  function inspectAt(cx, cy) {
    const p = pixelAt(cx, cy);
    if (inside(p)) select(p.x, p.y);
  }

  window.addEventListener('keydown', (e) => {
    if (e.target.closest && e.target.closest('input, textarea, dialog')) return;
    const step = 40 / cam.z;
    const k = e.key;
    if (k === 'Escape') { if (selected) closeInfo(); else chooseColour(-1); }
    else if (k === '+' || k === '=') zoomAt(vw / 2, vh / 2, 1.5);
    else if (k === '-' || k === '_') zoomAt(vw / 2, vh / 2, 1 / 1.5);
    else if (k === '0') fitView(true);
    else if (k === 'ArrowLeft') { cam.x -= step; clampCam(); viewChanged(); }
    else if (k === 'ArrowRight') { cam.x += step; clampCam(); viewChanged(); }
    else if (k === 'ArrowUp') { cam.y -= step; clampCam(); viewChanged(); }
    else if (k === 'ArrowDown') { cam.y += step; clampCam(); viewChanged(); }
    else return;
    e.preventDefault();
  });

  $('zoom-in').onclick = () => zoomAt(vw / 2, vh / 2, 1.5);
  $('zoom-out').onclick = () => zoomAt(vw / 2, vh / 2, 1 / 1.5);
  $('zoom-fit').onclick = () => fitView(true);
  window.addEventListener('hashchange', () => { if (W && readHash()) viewChanged(); });

  // ---------------------------------------------------------------- palette
  function buildPalette() {
    const pal = $('palette');
    pal.textContent = '';
    const mk = (i, label, bg) => {
      const b = P.el('button', {type: 'button', role: 'radio', title: label, 'aria-label': label,
        'data-colour': i, class: i < 0 ? 'inspect' : ''});
      if (bg) b.style.background = bg;
      else b.innerHTML = '<svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true">' +
        '<circle cx="6.5" cy="6.5" r="4.5" fill="none" stroke="currentColor" stroke-width="2"/>' +
        '<path d="M10 10l4.5 4.5" stroke="currentColor" stroke-width="2.2" stroke-linecap="round"/></svg>';
      b.onclick = () => chooseColour(i === colour && i >= 0 ? -1 : i);
      pal.append(b);
    };
    mk(-1, 'inspect: click a pixel to see who placed it', null);
    palette.forEach((hex, i) => mk(i, 'colour ' + i + ' ' + hex, hex));
    chooseColour(colour < palette.length ? colour : -1);
  }

  function chooseColour(i) {
    colour = i;
    for (const b of $('palette').children)
      b.setAttribute('aria-checked', String(Number(b.dataset.colour) === i));
    vp.classList.toggle('placing', i >= 0);
    needPaint = true;
    tick();
  }

  // ---------------------------------------------------------------- info panel
  let infoEvents = [], infoGen = 0;

  function select(x, y) {
    selected = {x, y};
    needPaint = true;
    viewChanged();
    $('info').hidden = false;
    $('info-title').textContent = 'Pixel (' + x + ', ' + y + ')';
    const c = truth ? truth[y * W + x] : 0;
    $('info-swatch').style.background = palette[c] || '#fff';
    $('info-note').textContent = 'loading history…';
    infoEvents = [];
    renderInfo();
    loadHistory(x, y);
  }

  async function loadHistory(x, y) {
    const gen = ++infoGen;
    const r = await P.api('GET', '/api/v1/history/pixel?x=' + x + '&y=' + y + '&limit=20');
    if (gen !== infoGen) return;
    if (!r.ok) { $('info-note').textContent = 'history unavailable: ' + P.errorText(r); return; }
    const live = infoEvents.filter((e) => e.live);
    const known = new Set(r.data.events.map((e) => e.seq));
    infoEvents = r.data.events.concat(live.filter((e) => !known.has(e.seq)));
    infoEvents.sort((a, b) => b.seq - a.seq);
    $('info-note').textContent = infoEvents.length ? '' : 'Nobody has placed this pixel yet.';
    renderInfo();
  }

  function infoAddLive(u) {
    if (infoEvents.some((e) => e.seq === u.seq)) return;
    infoEvents.unshift({seq: u.seq, x: u.x, y: u.y, color: u.color, userId: u.userId,
      username: u.username, createdAt: u.time || Date.now(), live: true});
    infoEvents.sort((a, b) => b.seq - a.seq);
    $('info-note').textContent = '';
    $('info-swatch').style.background = palette[u.color];
    renderInfo();
  }

  function renderInfo() {
    const ol = $('info-events');
    ol.textContent = '';
    for (const e of infoEvents) {
      const who = P.userLabel(e, me && me.userId);
      const li = P.el('li', {class: 'event', 'data-seq': e.seq},
        P.el('span', {class: 'swatch', style: 'background:' + (palette[e.color] || '#000')}),
        P.el('span', {class: 'by', title: 'user id ' + e.userId, text: who}),
        P.el('time', {datetime: new Date(e.createdAt).toISOString(), title: new Date(e.createdAt).toLocaleString(),
          text: P.when(e.createdAt)}));
      ol.append(li);
    }
  }

  function closeInfo() {
    selected = null;
    infoGen++;
    $('info').hidden = true;
    needPaint = true;
    viewChanged();
  }

  $('info-close').onclick = closeInfo;
  $('info-link').onclick = async () => {
    writeHash();
    try {
      await navigator.clipboard.writeText(location.href);
      say('Link copied.');
    } catch (e) {
      say('Link: ' + location.href, 'info', 10000);
    }
  };

  // ---------------------------------------------------------------- cooldown line
  function tick() {
    const c = $('cooldown');
    const left = cooldownUntil - Date.now();
    let text, cls;
    if (banned) { text = 'banned'; cls = 'cooldown banned'; }
    else if (left > 0) { text = 'next pixel in ' + (left / 1000).toFixed(1) + ' s'; cls = 'cooldown wait'; }
    else if (colour < 0) { text = 'pick a colour to place'; cls = 'cooldown'; }
    else { text = 'ready to place'; cls = 'cooldown ready'; }
    if (c.textContent !== text) c.textContent = text;
    if (c.className.replace(' flash', '') !== cls) c.className = cls;
    c.dataset.left = Math.max(0, Math.ceil(left));
  }

  // ---------------------------------------------------------------- test hooks
  // read-only views of the page's state for the browser tests
  window.placeDebug = {
    state: () => ({W, H, lastSeq, syncing, wsOpen, haveCanvas, canvasLoads, pending: pending.length,
      overlay: overlay.size, cam: {...cam}, vw, vh, dpr, colour, banned,
      userId: me && me.userId, cooldownLeft: Math.max(0, cooldownUntil - Date.now())}),
    pixel: (x, y) => truth[y * W + x],
    shown: (x, y) => { const v = img32[y * W + x]; return palABGR.indexOf(v); },
    // css px (client coordinates) of the centre of canvas pixel (x, y)
    clientOf: (x, y) => {
      const {s, ox, oy} = origin();
      const r = vp.getBoundingClientRect();
      return {x: r.left + (ox + (x + 0.5) * s) / dpr, y: r.top + (oy + (y + 0.5) * s) / dpr};
    },
    pixelAtClient: (cx, cy) => { const r = vp.getBoundingClientRect(); return pixelAt(cx - r.left, cy - r.top); },
    // the colour drawn on screen at a client point, as #RRGGBB
    screenColour: (cx, cy) => {
      const r = vp.getBoundingClientRect();
      const d = vctx.getImageData(Math.floor((cx - r.left) * dpr), Math.floor((cy - r.top) * dpr), 1, 1).data;
      return '#' + [d[0], d[1], d[2]].map((v) => v.toString(16).padStart(2, '0')).join('').toUpperCase();
    },
    digest: async () => {
      const h = await crypto.subtle.digest('SHA-256', truth);
      return [...new Uint8Array(h)].map((b) => b.toString(16).padStart(2, '0')).join('');
    },
    frames: 0,
  };
  (function countFrames() { window.placeDebug.frames++; requestAnimationFrame(countFrames); })();

  // ---------------------------------------------------------------- start
  async function main() {
    $('btn-login').onclick = () => signIn('login');
    $('btn-register').onclick = () => signIn('register');
    $('btn-logout').onclick = signOut;
    new ResizeObserver(() => resize()).observe(vp);
    resize();
    requestAnimationFrame(frame);
    setInterval(tick, 100);
    window.addEventListener('online', () => { if (!wsOpen) reconnectNow(); });
    let ci = null;
    for (let attempt = 0; !ci; attempt++) {
      const r = await P.api('GET', '/api/v1/canvas/info');
      if (r.ok && r.data) { ci = r.data; break; }
      setConn('server unreachable; retrying', 'bad');
      await sleep(Math.min(1000 * 2 ** attempt, 10000));
    }
    initCanvas(ci);
    cooldownMs = ci.cooldownMs !== undefined ? ci.cooldownMs : (ci.cooldown || 0) * 1000;
    const user = await P.session();
    if (user) setMe(user);
    else say('Could not start a session: the server is unreachable.', 'error');
    connect();
  }

  main().catch((e) => say('error: ' + e.message, 'error', 1e9));
})();
