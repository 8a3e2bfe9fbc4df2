// Minimal client over REST: shows the canvas (polled with ETag), places a
// pixel on click. The live WebSocket client replaces the polling later.
'use strict';
const board = document.getElementById('board');
const ctx = board.getContext('2d');
const statusEl = document.getElementById('status');
let info = null, image = null, etag = null, colour = 0, cooldownUntil = 0;

function say(msg, error) {
  statusEl.textContent = msg;
  statusEl.className = error ? 'error' : '';
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

async function refresh() {
  const r = await fetch('/api/v1/canvas', {headers: etag ? {'If-None-Match': etag} : {}});
  if (r.status === 304) return;
  if (!r.ok) { say('canvas unavailable (' + r.status + ')', true); return; }
  etag = r.headers.get('ETag');
  const bytes = new Uint8Array(await r.arrayBuffer());
  const pal = info.palette.map(rgb);
  for (let i = 0; i < bytes.length; i++) {
    const c = pal[bytes[i]] || [0, 0, 0];
    image.data[4 * i] = c[0]; image.data[4 * i + 1] = c[1]; image.data[4 * i + 2] = c[2];
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

function pixelAt(ev) {
  const r = board.getBoundingClientRect();
  return [Math.floor((ev.clientX - r.left) * info.width / r.width),
          Math.floor((ev.clientY - r.top) * info.height / r.height)];
}

async function place(ev) {
  const [x, y] = pixelAt(ev);
  const r = await api('POST', '/api/v1/pixel', {x, y, color: colour});
  if (r.status === 201) {
    cooldownUntil = Date.now() + r.data.cooldownMs;
    const c = rgb(info.palette[colour]);
    ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
    ctx.fillRect(x, y, 1, 1);
  } else if (r.data && r.data.error) {
    if (r.data.error.code === 'RATE_LIMITED')
      cooldownUntil = Date.now() + r.data.error.cooldownRemainingMs;
    else say(r.data.error.message, true);
  }
}

function tick() {
  const left = Math.max(0, cooldownUntil - Date.now());
  if (left > 0) say('next pixel in ' + (left / 1000).toFixed(1) + ' s');
  else if (!statusEl.classList.contains('error')) say('ready to place');
}

async function main() {
  info = (await api('GET', '/api/v1/canvas/info')).data;
  let me = await api('GET', '/api/v1/auth/me');
  if (me.status === 401) me = await api('POST', '/api/v1/auth/guest');
  document.getElementById('who').textContent = me.data.username;
  if (me.data.cooldownRemaining) cooldownUntil = Date.now() + me.data.cooldownRemaining * 1000;
  board.width = info.width;
  board.height = info.height;
  image = ctx.createImageData(info.width, info.height);
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
  await refresh();
  setInterval(refresh, 1000);
  setInterval(tick, 100);
}

main().catch((e) => say('error: ' + e.message, true));
