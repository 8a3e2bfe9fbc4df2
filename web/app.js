// Live canvas client: the WebSocket first (updates buffered), then the
// canvas over REST, then buffered updates newer than the canvas's seq; a
// seq gap, `resync` or `reset` refetches. Places pixels over the socket,
// drawn at once and reverted if the server refuses. Reconnects with
// jittered backoff. (Zoom, pan, history and accounts come with the full
// client.)
'use strict';
const board = document.getElementById('board');
const ctx = board.getContext('2d');
const statusEl = document.getElementById('status');
const connEl = document.getElementById('conn');
let info = null, image = null, pal = [], colour = 0, cooldownUntil = 0;
let ws = null, lastSeq = -1, buffering = true, buffered = [], backoff = 500, dirty = false;
let canvasBytes = null, pending = new Map(); // "x,y" -> previous colour, until ack/error
let message = '', messageError = false, messageUntil = 0;

function say(msg, error, ms) {
  message = msg; messageError = !!error; messageUntil = Date.now() + (ms || 4000);
}

function setConn(text, ok) {
  connEl.textContent = text;
  connEl.className = ok ? 'ok' : 'bad';
}

async function api(method, path, body) {
  const r = await fetch(path, {method, credentials: 'same-origin',
    headers: body ? {'Content-Type': 'application/json'} : {},
    body: body ? JSON.stringify(body) : undefined});
  let data = null;
  try { data = await r.json(); } catch (e) { /* no body */ }
  return {status: r.status, data, headers: r.headers};
}

function rgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [n >> 16, (n >> 8) & 255, n & 255];
}

function setPixel(x, y, c) {
  const i = y * info.width + x;
  canvasBytes[i] = c;
  const p = pal[c] || [0, 0, 0];
  image.data[4 * i] = p[0]; image.data[4 * i + 1] = p[1]; image.data[4 * i + 2] = p[2];
  image.data[4 * i + 3] = 255;
  dirty = true;
}

function paint() {
  if (dirty) { ctx.putImageData(image, 0, 0); dirty = false; }
  requestAnimationFrame(paint);
}

async function fetchCanvas() {
  buffering = true;
  const r = await fetch('/api/v1/canvas', {cache: 'no-store'});
  if (!r.ok) throw new Error('canvas unavailable (' + r.status + ')');
  const seq = parseInt(r.headers.get('X-Canvas-Seq'), 10);
  const bytes = new Uint8Array(await r.arrayBuffer());
  for (let i = 0; i < bytes.length; i++) setPixel(i % info.width, (i / info.width) | 0, bytes[i]);
  lastSeq = seq;
  buffering = false;
  const queued = buffered;
  buffered = [];
  queued.forEach(handle);
}

function resync() {
  if (buffering) return;
  fetchCanvas().catch((e) => say(e.message, true));
}

function applyUpdate(u) {
  if (u.seq <= lastSeq) return; // already in the canvas we fetched
  if (u.seq !== lastSeq + 1) { buffered.push(u); resync(); return; }
  lastSeq = u.seq;
  pending.delete(u.x + ',' + u.y);
  setPixel(u.x, u.y, u.color);
}

function handle(m) {
  switch (m.type) {
  case 'update':
    if (buffering) buffered.push(m); else applyUpdate(m);
    break;
  case 'welcome':
    cooldownUntil = Date.now() + (m.cooldownRemainingMs || 0);
    break;
  case 'ack':
    pending.delete(m.x + ',' + m.y);
    cooldownUntil = Date.now() + m.cooldownMs;
    break;
  case 'error': {
    // the oldest optimistic pixel is the one refused: put its colour back
    const first = pending.entries().next();
    if (!first.done) {
      const [key, prev] = first.value;
      pending.delete(key);
      const [x, y] = key.split(',').map(Number);
      setPixel(x, y, prev);
    }
    if (m.code === 'RATE_LIMITED' && m.cooldownRemainingMs)
      cooldownUntil = Date.now() + m.cooldownRemainingMs;
    const texts = {RATE_LIMITED: 'Wait for your cooldown', INVALID_COORDS: 'Outside the canvas',
      INVALID_COLOR: 'Not a palette colour', BANNED: 'Your account is banned',
      UNAUTHORIZED: 'Session expired: reload', UNAVAILABLE: 'Server busy, try again'};
    say((texts[m.code] || m.code) + ': ' + m.message, true);
    break;
  }
  case 'settings':
    say('Cooldown is now ' + m.cooldown + ' s');
    break;
  case 'reset':
  case 'resync':
    resync();
    break;
  }
}

function connect() {
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/ws';
  setConn('connecting…', false);
  buffering = true;
  buffered = [];
  ws = new WebSocket(url);
  ws.onopen = () => {
    backoff = 500;
    setConn('live', true);
    fetchCanvas().catch((e) => say(e.message, true));
  };
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    (Array.isArray(m) ? m : [m]).forEach(handle);
  };
  ws.onclose = (ev) => {
    ws = null;
    const wait = backoff * (0.5 + Math.random());
    backoff = Math.min(backoff * 2, 10000);
    setConn(`offline (${ev.code}); retrying in ${(wait / 1000).toFixed(1)} s`, false);
    setTimeout(connect, wait);
  };
}

function pixelAt(ev) {
  const r = board.getBoundingClientRect();
  return [Math.floor((ev.clientX - r.left) * info.width / r.width),
          Math.floor((ev.clientY - r.top) * info.height / r.height)];
}

function place(ev) {
  const [x, y] = pixelAt(ev);
  if (!ws || ws.readyState !== WebSocket.OPEN) { say('Not connected', true); return; }
  if (x < 0 || y < 0 || x >= info.width || y >= info.height) return;
  pending.set(x + ',' + y, canvasBytes[y * info.width + x]);
  setPixel(x, y, colour); // drawn at once; reverted if refused
  ws.send(JSON.stringify({type: 'place', x, y, color: colour}));
}

function tick() {
  const left = Math.max(0, cooldownUntil - Date.now());
  if (Date.now() < messageUntil) {
    statusEl.textContent = message;
    statusEl.className = messageError ? 'error' : '';
  } else {
    statusEl.textContent = left > 0 ? 'next pixel in ' + (left / 1000).toFixed(1) + ' s'
                                    : 'ready to place';
    statusEl.className = '';
  }
}

async function main() {
  info = (await api('GET', '/api/v1/canvas/info')).data;
  pal = info.palette.map(rgb);
  let me = await api('GET', '/api/v1/auth/me');
  if (me.status === 401) me = await api('POST', '/api/v1/auth/guest');
  document.getElementById('who').textContent = me.data.username;
  board.width = info.width;
  board.height = info.height;
  image = ctx.createImageData(info.width, info.height);
  canvasBytes = new Uint8Array(info.width * info.height);
  const palEl = document.getElementById('palette');
  info.palette.forEach((hex, i) => {
    const b = document.createElement('button');
    b.style.background = hex;
    b.title = hex;
    b.setAttribute('role', 'radio');
    b.setAttribute('aria-checked', i === colour ? 'true' : 'false');
    b.onclick = () => {
      colour = i;
      palEl.querySelectorAll('button').forEach((o, j) => o.setAttribute('aria-checked', j === i));
    };
    palEl.appendChild(b);
  });
  board.addEventListener('click', place);
  board.addEventListener('mousemove', (ev) => {
    const [x, y] = pixelAt(ev);
    document.getElementById('coords').textContent = `x ${x}, y ${y}`;
  });
  connect();
  requestAnimationFrame(paint);
  setInterval(tick, 100);
}

main().catch((e) => say('error: ' + e.message, true, 1e9));
