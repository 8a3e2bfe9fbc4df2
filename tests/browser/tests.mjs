// The browser tests: each is {name, fn(ctx)}; ctx from run.mjs (api,
// worker, browser, newPage, shot). Pages are inspected through the DOM a
// person sees and through window.placeDebug (read-only state of app.js:
// canvas bytes, camera, the colour drawn on screen at a point).
import fs from 'node:fs';
import path from 'node:path';
import {Api, OUT, adminSession, assert, assertEq, redis, resetState, sha256hex, sleep, waitFor} from './lib.mjs';

const PALETTE = ['#FFFFFF', '#E4E4E4', '#888888', '#222222', '#FFA7D1', '#E50000', '#E59500', '#A06A42',
  '#E5D900', '#94E044', '#02BE01', '#00D3DD', '#0083C7', '#0000EA', '#CF6EE4', '#820080'];

// ---------------------------------------------------------------- helpers
async function live(page, timeout = 15000) {
  await page.waitForFunction(() => {
    const s = window.placeDebug && window.placeDebug.state();
    return s && s.haveCanvas && s.wsOpen && !s.syncing;
  }, null, {timeout});
}
const state = (page) => page.evaluate(() => window.placeDebug.state());
const clientOf = (page, x, y) => page.evaluate(([a, b]) => window.placeDebug.clientOf(a, b), [x, y]);
const pixel = (page, x, y) => page.evaluate(([a, b]) => window.placeDebug.pixel(a, b), [x, y]);
const shown = (page, x, y) => page.evaluate(([a, b]) => window.placeDebug.shown(a, b), [x, y]);
const screenColour = (page, p) => page.evaluate(([a, b]) => window.placeDebug.screenColour(a, b), [p.x, p.y]);
const text = (page, sel) => page.locator(sel).innerText();

async function pickColour(page, c) {
  await page.click(`#palette button[data-colour="${c}"]`);
}

async function clickPixel(page, x, y) {
  const p = await clientOf(page, x, y);
  await page.mouse.click(p.x, p.y);
  return p;
}

// the page's canvas equals the server's, and so does what is drawn at a few pixels
async function sameCanvas(page, api) {
  const {bytes, seq} = await api.canvas();
  await waitFor(async () => (await state(page)).lastSeq >= seq, {what: `page at seq ${seq}`});
  const want = await sha256hex(bytes);
  await waitFor(async () => (await page.evaluate(() => window.placeDebug.digest())) === want,
    {what: 'page canvas == server canvas'});
  return bytes;
}

// a test of an endpoint the api does not have yet fails with that reason
async function needRoute(api, method, p) {
  if (!(await api.has(method, p))) throw new Error(`NOT IMPLEMENTED: ${method} ${p} answers 404 (the api does not have it yet)`);
}

const isVisible = (page, sel) => page.locator(sel).isVisible();

// ---------------------------------------------------------------- tests
export const TESTS = [];
const test = (name, fn, timeout) => TESTS.push({name, fn, timeout});

test('pixel_placed_in_one_page_appears_in_the_other', async ({api, newPage, shot}) => {
  const a = await newPage();
  const b = await newPage();
  await live(a);
  await live(b);
  const ua = (await state(a)).userId;
  assert(ua && ua !== (await state(b)).userId, 'two pages, two guests');
  await pickColour(a, 5);
  const pa = await clickPixel(a, 10, 20);
  // drawn at once in the placing page
  assertEq(await shown(a, 10, 20), 5, 'drawn at once');
  // confirmed, and in the other page: canvas bytes and what is on screen
  await waitFor(async () => (await pixel(b, 10, 20)) === 5, {what: 'pixel in page B'});
  const pb = await clientOf(b, 10, 20);
  await waitFor(async () => (await screenColour(b, pb)) === PALETTE[5], {what: 'pixel drawn in page B'});
  assertEq(await screenColour(a, pa), PALETTE[5], 'page A shows it');
  // GET /api/v1/canvas is re-encoded at most every [canvas] cache_ms (250 ms)
  await waitFor(async () => (await api.canvas()).bytes[20 * 500 + 10] === 5,
    {what: 'pixel in the server canvas'});
  await sameCanvas(b, api);
  // page B selects it: who placed it and when (history API and live updates)
  await b.click('#palette button[data-colour="-1"]');
  await clickPixel(b, 10, 20);
  await b.waitForSelector('#info:not([hidden])');
  assertEq(await text(b, '#info-title'), 'Pixel (10, 20)', 'info title');
  await waitFor(async () => (await text(b, '#info-events')).includes('user ' + ua.slice(0, 8)),
    {what: 'history names the placer'});
  await b.waitForSelector('#info-events time');
  await waitFor(() => /#.*sel=10,20/.test(b.url()), {what: 'the URL names the selected pixel'});
  await shot(a, 'canvas-page-a');
  await shot(b, 'canvas-page-b-pixel-info');
});

test('cooldown_shows_and_second_click_is_refused', async ({api, newPage, shot}) => {
  const a = await newPage();
  await live(a);
  // a second page of the same player (same cookies), open before the placement
  const a2 = await a.context().newPage();
  await a2.goto(api.url + '/');
  await live(a2);
  assertEq((await state(a2)).userId, (await state(a)).userId, 'same player');
  await pickColour(a, 13);
  await clickPixel(a, 30, 30);
  await waitFor(async () => (await text(a, '#cooldown')).startsWith('next pixel in'), {what: 'cooldown shown'});
  await waitFor(async () => (await pixel(a, 30, 30)) === 13, {what: 'placement confirmed'});
  await shot(a, 'canvas-cooldown');
  // the page knows the cooldown: the second click is refused with the message
  await clickPixel(a, 31, 30);
  await a.waitForSelector('#message.error');
  const msg = await text(a, '#message');
  assert(/cooldown/i.test(msg) && /\d+\.\d s/.test(msg), 'cooldown message: ' + msg);
  assertEq(await shown(a, 31, 30), 0, 'nothing drawn');
  await shot(a, 'canvas-cooldown-refused');
  // the other page did not know: the server refuses, the pixel is reverted
  await pickColour(a2, 13);
  await clickPixel(a2, 32, 30);
  await a2.waitForSelector('#message.error');
  const msg2 = await text(a2, '#message');
  assert(/cooldown active/i.test(msg2), 'server refusal shown: ' + msg2);
  await waitFor(async () => (await shown(a2, 32, 30)) === 0, {what: 'refused pixel reverted'});
  assert((await state(a2)).overlay === 0, 'no optimistic pixel left');
  await waitFor(async () => (await text(a2, '#cooldown')).startsWith('next pixel in'), {what: 'cooldown from the refusal'});
  const {bytes} = await api.canvas();
  assertEq([bytes[30 * 500 + 31], bytes[30 * 500 + 32]], [0, 0], 'server canvas unchanged');
  await shot(a2, 'canvas-refused-by-server');
  // after the cooldown, placing works again
  await waitFor(async () => (await text(a, '#cooldown')) === 'ready to place', {timeout: 5000, what: 'cooldown over'});
  await clickPixel(a, 31, 30);
  await waitFor(async () => (await pixel(a, 31, 30)) === 13, {what: 'placed after the cooldown'});
});

test('api_restarted_under_the_page_reconnects_with_the_right_canvas', async ({api, newPage, shot}) => {
  const page = await newPage();
  await live(page);
  assertEq(await page.locator('#conn').getAttribute('data-state'), 'ok', 'live');
  await api.stop(); // SIGTERM: close 1001 to every client
  await waitFor(async () => (await page.locator('#conn').getAttribute('data-state')) === 'bad', {what: 'offline shown'});
  assert(/offline/.test(await text(page, '#conn')), 'offline text');
  await shot(page, 'canvas-offline');
  // meanwhile pixels are placed through another instance on the same Redis
  const other = await new Api('browser-api-other', {cooldown_seconds: 0}).start();
  try {
    const g = await other.guest();
    const placed = [[100, 100, 3], [101, 100, 5], [102, 100, 7], [250, 250, 12]];
    for (const [x, y, c] of placed) {
      const r = await other.place(g.token, x, y, c);
      assertEq(r.status, 201, 'placement through the other instance');
    }
  } finally {
    await other.stop();
  }
  await api.start(); // same port
  await waitFor(async () => (await page.locator('#conn').getAttribute('data-state')) === 'ok',
    {timeout: 20000, what: 'reconnected'});
  await live(page);
  await sameCanvas(page, api);
  // the data is right (sameCanvas); the screen follows on the next animation
  // frame after the refetched canvas went in, so wait for it, then assert
  for (const [x, y, c] of [[100, 100, 3], [101, 100, 5], [250, 250, 12]]) {
    const p = await clientOf(page, x, y);
    await waitFor(async () => (await screenColour(page, p)) === PALETTE[c],
      {timeout: 5000, what: `(${x}, ${y}) drawn`}).catch(() => {});
    assertEq(await screenColour(page, p), PALETTE[c], `drawn at (${x}, ${y})`);
  }
  // and it is live again
  const g = await api.guest();
  await api.place(g.token, 103, 100, 9);
  await waitFor(async () => (await pixel(page, 103, 100)) === 9, {what: 'updates after the reconnect'});
  await shot(page, 'canvas-reconnected');
});

test('zoom_and_pan_keep_the_pixel_under_the_pointer', async ({api, newPage, shot}) => {
  const page = await newPage();
  await live(page);
  const s0 = await state(page);
  const coords = async () => {
    const m = /x (\d+), y (\d+)/.exec(await text(page, '#coords'));
    return m ? [Number(m[1]), Number(m[2])] : null;
  };
  const P = {x: 400, y: 300};
  await page.mouse.move(P.x, P.y);
  const before = await coords();
  assert(before, 'coordinates shown under the pointer');
  // wheel zoom around the pointer
  for (let i = 0; i < 6; i++) { await page.mouse.wheel(0, -200); await sleep(30); }
  const s1 = await state(page);
  assert(s1.cam.z > s0.cam.z * 4, `zoomed in: ${s0.cam.z} -> ${s1.cam.z}`);
  const after = await coords();
  assert(Math.abs(after[0] - before[0]) <= 1 && Math.abs(after[1] - before[1]) <= 1,
    `same pixel under the pointer after zooming: ${before} -> ${after}`);
  // drag: the pixel under the pointer moves with it
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) await page.mouse.move(P.x + 15 * i, P.y + 8 * i);
  await page.mouse.up();
  const moved = await coords();
  assert(Math.abs(moved[0] - before[0]) <= 1 && Math.abs(moved[1] - before[1]) <= 1,
    `pixel followed the drag: ${before} -> ${moved}`);
  // a pixel's screen position: the page, the label and a click all agree
  const Q = {x: 250, y: 200};
  await page.mouse.move(Q.x, Q.y);
  const [qx, qy] = await coords();
  const q2 = await page.evaluate(([a, b]) => window.placeDebug.pixelAtClient(a, b), [Q.x, Q.y]);
  assertEq([q2.x, q2.y], [qx, qy], 'label = page maths');
  await pickColour(page, 12);
  await page.mouse.click(Q.x, Q.y);
  await waitFor(async () => (await api.canvas()).bytes[qy * 500 + qx] === 12, {what: `placed at (${qx}, ${qy}) on the server`});
  assertEq(await screenColour(page, Q), PALETTE[12], 'drawn under the pointer');
  // neighbours of the placed pixel on screen are not that colour (crisp, one pixel)
  const z = (await state(page)).cam.z;
  const c = await clientOf(page, qx, qy);
  assert(z >= 8, 'zoomed enough to look at one pixel: ' + z);
  assertEq(await screenColour(page, {x: c.x + z, y: c.y}), PALETTE[0], 'right neighbour untouched');
  assertEq(await screenColour(page, {x: c.x + z / 2 - 1.5, y: c.y + z / 2 - 1.5}), PALETTE[12], 'edge of the pixel');
  await shot(page, 'canvas-zoomed');
  // the URL holds position and zoom: a reload (or a shared link) shows the same view
  await sleep(400);
  const url = page.url();
  assert(/#x=[\d.]+&y=[\d.]+&z=[\d.]+/.test(url), 'position in the URL: ' + url);
  const page2 = await newPage({url});
  await live(page2);
  const s2 = await state(page2);
  const s3 = await state(page);
  assert(Math.abs(s2.cam.z - s3.cam.z) < 0.01 && Math.abs(s2.cam.x - s3.cam.x) < 0.1 && Math.abs(s2.cam.y - s3.cam.y) < 0.1,
    `shared view: ${JSON.stringify(s3.cam)} vs ${JSON.stringify(s2.cam)}`);
  const q3 = await page2.evaluate(([a, b]) => window.placeDebug.pixelAtClient(a, b), [Q.x, Q.y]);
  assertEq([q3.x, q3.y], [qx, qy], 'same pixel at the same spot in the shared view');
  // limits: zoom stops at 64, panning stops at the canvas edge
  for (let i = 0; i < 15; i++) await page.mouse.wheel(0, -300);
  assertEq((await state(page)).cam.z, 64, 'maximum zoom');
  for (let i = 0; i < 25; i++) await page.mouse.wheel(0, 300);
  const zmin = (await state(page)).cam.z;
  assert(zmin > 0.3 && zmin < 1, 'minimum zoom ' + zmin);
  await page.mouse.move(500, 350);
  await page.mouse.down();
  await page.mouse.move(900, 650, {steps: 5});
  await page.mouse.move(990, 690, {steps: 2});
  await page.mouse.up();
  const s4 = await state(page);
  assert(s4.cam.x >= 0 && s4.cam.y >= 0, 'camera stays over the canvas: ' + JSON.stringify(s4.cam));
});

test('phone_touch_tap_and_pinch', async ({api, newPage, shot}) => {
  const page = await newPage({viewport: {width: 390, height: 844}, deviceScaleFactor: 2, isMobile: true, hasTouch: true});
  await live(page);
  // layout: nothing wider than the screen, the palette reachable
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert(overflow <= 390, 'page wider than the phone: ' + overflow);
  const pal = await page.locator('#palette').boundingBox();
  assert(pal && pal.y + pal.height <= 844 && pal.x >= 0, 'palette on screen: ' + JSON.stringify(pal));
  await page.tap('#palette button[data-colour="6"]');
  const p = await clientOf(page, 200, 260);
  await page.touchscreen.tap(p.x, p.y);
  await waitFor(async () => (await api.canvas()).bytes[260 * 500 + 200] === 6, {what: 'tap placed the pixel'});
  // a long press inspects the pixel (who placed it) without placing
  const q = await clientOf(page, 200, 260);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Input.dispatchTouchEvent', {type: 'touchStart', touchPoints: [{x: q.x, y: q.y, id: 3}]});
  await sleep(800);
  await cdp.send('Input.dispatchTouchEvent', {type: 'touchEnd', touchPoints: []});
  await page.waitForSelector('#info:not([hidden])');
  assertEq(await text(page, '#info-title'), 'Pixel (200, 260)', 'long press selected the pixel');
  await waitFor(async () => (await text(page, '#info-events')).includes('you'), {what: 'history: placed by you'});
  const info = await page.locator('#info').boundingBox();
  assert(info.x >= 0 && info.x + info.width <= 390, 'info panel fits the screen: ' + JSON.stringify(info));
  await shot(page, 'canvas-phone-pixel-info');
  await page.tap('#info-close');
  // pinch out around a point with two fingers (CDP touch events)
  const z0 = (await state(page)).cam.z;
  const cx = 195, cy = 420;
  const under0 = await page.evaluate(([a, b]) => window.placeDebug.pixelAtClient(a, b), [cx, cy]);
  const touch = (type, d) => cdp.send('Input.dispatchTouchEvent', {type,
    touchPoints: type === 'touchEnd' ? [] : [{x: cx - d, y: cy, id: 1}, {x: cx + d, y: cy, id: 2}]});
  await touch('touchStart', 20);
  for (let d = 30; d <= 120; d += 10) { await touch('touchMove', d); await sleep(16); }
  await touch('touchEnd', 0);
  const z1 = (await state(page)).cam.z;
  assert(z1 > z0 * 4, `pinch zoomed in: ${z0} -> ${z1}`);
  const under1 = await page.evaluate(([a, b]) => window.placeDebug.pixelAtClient(a, b), [cx, cy]);
  assert(Math.abs(under1.x - under0.x) <= 1 && Math.abs(under1.y - under0.y) <= 1,
    `pinch kept the pixel between the fingers: ${JSON.stringify(under0)} -> ${JSON.stringify(under1)}`);
  await shot(page, 'canvas-phone');
});

test('admin_page_without_an_admin_session_asks_to_log_in', async ({newPage, shot}) => {
  const page = await newPage({url: '/'});
  await live(page); // a guest now
  await page.goto(page.url().replace(/\/(#.*)?$/, '/admin.html'));
  await page.waitForSelector('#login-box:not([hidden])');
  assert(!(await isVisible(page, '#admin')), 'admin tools hidden');
  assert(/admin/i.test(await text(page, '#login-box')), 'prompt text');
  await page.click('#btn-login');
  await page.waitForSelector('#auth-dialog[open]');
  await shot(page, 'admin-login-prompt');
  await page.click('#auth-cancel');
});

test('register_login_logout_on_the_canvas_page', async ({api, newPage, shot}) => {
  await needRoute(api, 'POST', '/api/v1/auth/register');
  const page = await newPage();
  await live(page);
  const guestId = (await state(page)).userId;
  assert(/\(guest\)/.test(await text(page, '#who')), 'guest by default');
  const name = 'br' + Date.now().toString(36);
  const password = 'correct horse 7';
  await page.click('#btn-register');
  await page.fill('#auth-username', name);
  await page.fill('#auth-password', password);
  await shot(page, 'canvas-register-dialog');
  await page.click('#auth-submit');
  await waitFor(async () => (await text(page, '#who')) === name, {what: 'registered name shown'});
  assert(await isVisible(page, '#btn-logout'), 'log out offered');
  assert(!(await isVisible(page, '#btn-register')), 'no sign up once registered');
  await live(page);
  assertEq((await state(page)).userId, guestId, 'a guest that registers keeps its user id');
  // the socket uses the registered session: placing works
  await pickColour(page, 10);
  await clickPixel(page, 60, 60);
  await waitFor(async () => (await pixel(page, 60, 60)) === 10, {what: 'registered player placed'});
  await shot(page, 'canvas-registered');
  // log out: a guest again, with another id
  await page.click('#btn-logout');
  await waitFor(async () => /\(guest\)/.test(await text(page, '#who')), {what: 'guest after logout'});
  await live(page);
  const newGuest = (await state(page)).userId;
  assert(newGuest && newGuest !== guestId, 'a new guest after logout');
  // wrong password, then the right one
  await page.click('#btn-login');
  await page.fill('#auth-username', name);
  await page.fill('#auth-password', 'wrong password');
  await page.click('#auth-submit');
  await waitFor(async () => /wrong username or password/i.test(await text(page, '#auth-error')), {what: 'bad login message'});
  await page.fill('#auth-password', password);
  await page.click('#auth-submit');
  await waitFor(async () => (await text(page, '#who')) === name, {what: 'logged in'});
  await live(page);
  assertEq((await state(page)).userId, guestId, 'logged back into the account');
  // the name is taken for anybody else
  const other = await newPage();
  await live(other);
  await other.click('#btn-register');
  await other.fill('#auth-username', name);
  await other.fill('#auth-password', 'another password');
  await other.click('#auth-submit');
  await waitFor(async () => /taken/i.test(await text(other, '#auth-error')), {what: 'username taken message'});
  await shot(other, 'canvas-username-taken');
});

test('admin_bans_a_user_and_that_users_page_says_so', async ({api, newPage, shot}) => {
  await needRoute(api, 'POST', '/api/v1/admin/ban-user');
  await needRoute(api, 'POST', '/api/v1/auth/register');
  const user = await newPage();
  await live(user);
  // a registered player (the page's guest registers; the page reloads)
  const name = 'ban' + Date.now().toString(36), password = 'banned password 1';
  const reg = await user.evaluate(([u, p]) => window.Place.api('POST', '/api/v1/auth/register', {username: u, password: p}), [name, password]);
  assertEq(reg.status, 201, 'register');
  await user.reload();
  await live(user);
  assertEq(await text(user, '#who'), name, 'registered');
  const uid = (await state(user)).userId;
  await pickColour(user, 5);
  await clickPixel(user, 40, 40);
  await waitFor(async () => (await api.canvas()).bytes[40 * 500 + 40] === 5, {what: 'user placed a pixel'});
  const adm = adminSession();
  const admin = await newPage({url: '/admin.html', cookies: [{name: 'place_session', value: adm.token}]});
  await admin.waitForSelector('#admin:not([hidden])');
  await waitFor(async () => /^\d/.test(await text(admin, '#stat-conns')), {what: 'live stats shown'});
  // instances report their connections every few seconds
  await waitFor(async () => Number(await text(admin, '#stat-conns')) >= 1, {timeout: 15000, what: 'the user page counted as a connection'});
  assert(Number((await text(admin, '#stat-pixels')).replace(/,/g, '')) >= 1, 'pixels counted');
  // the recent placements name the user: pick them from the list (the sink stores it in ms)
  await waitFor(async () => {
    await admin.click('#recent-refresh');
    await sleep(200);
    return (await admin.locator(`#recent button:has-text("${uid}")`).count()) > 0;
  }, {what: 'user in the recent placements'});
  await admin.locator(`#recent button:has-text("${uid}")`).first().click();
  assertEq(await admin.inputValue('#ban-user'), uid, 'picked from the list');
  await admin.selectOption('#ban-rollback', '3600');
  await admin.click('#ban-btn');
  await admin.waitForSelector('#ban-result.ok');
  const res = await text(admin, '#ban-result');
  assert(/Banned/.test(res) && /1 pixel restored/.test(res), 'ban result: ' + res);
  // the user's page says so, and the pixel is rolled back everywhere
  await user.waitForSelector('#banner:not([hidden])');
  assert(/banned/i.test(await text(user, '#banner')), 'banner text');
  await waitFor(async () => (await pixel(user, 40, 40)) === 0, {what: 'rolled back on the user page'});
  await waitFor(async () => (await api.canvas()).bytes[40 * 500 + 40] === 0,
    {what: 'rolled back on the server (canvas re-encoded within cache_ms)'});
  // the page goes on showing the canvas (a guest session to watch), still banned
  await live(user);
  assert(await isVisible(user, '#banner'), 'still says banned after reconnecting');
  assertEq(await text(user, '#cooldown'), 'banned', 'status line');
  await user.evaluate(() => { document.getElementById('message').hidden = true; });
  await clickPixel(user, 41, 40);
  await user.waitForSelector('#message:not([hidden])');
  assert(/banned/i.test(await text(user, '#message')), 'placement refused as banned');
  assertEq((await state(user)).overlay, 0, 'nothing drawn');
  await shot(user, 'canvas-banned');
  await shot(admin, 'admin-page', {fullPage: true});
  // the account cannot log in while banned
  await user.click('#btn-login');
  await user.fill('#auth-username', name);
  await user.fill('#auth-password', password);
  await user.click('#auth-submit');
  await waitFor(async () => /banned/i.test(await text(user, '#auth-error')), {what: 'banned account refused at login'});
  // unban: the account logs in again and places
  await admin.click('#unban-btn');
  await waitFor(async () => /Unbanned/.test(await text(admin, '#ban-result')), {what: 'unban result'});
  await user.click('#auth-submit');
  await waitFor(async () => (await text(user, '#who')) === name, {what: 'logged in after the unban'});
  await user.waitForSelector('#banner', {state: 'hidden'});
  await live(user);
  await waitFor(async () => (await state(user)).cooldownLeft === 0, {what: 'cooldown over'});
  await clickPixel(user, 42, 40);
  await waitFor(async () => (await pixel(user, 42, 40)) === 5, {timeout: 8000, what: 'placing after the unban'});
});

test('admin_sets_the_cooldown_resets_the_canvas_and_takes_a_snapshot', async ({api, newPage, shot}) => {
  await needRoute(api, 'PUT', '/api/v1/admin/settings');
  const user = await newPage();
  await live(user);
  const g = await api.guest();
  await api.place(g.token, 70, 70, 3);
  await waitFor(async () => (await pixel(user, 70, 70)) === 3, {what: 'a pixel to reset'});
  const adm = adminSession();
  const admin = await newPage({url: '/admin.html', cookies: [{name: 'place_session', value: adm.token}]});
  await admin.waitForSelector('#admin:not([hidden])');
  try {
    await admin.fill('#cd-seconds', '7');
    await admin.click('#cd-save');
    await admin.waitForSelector('#cd-result.ok');
    await waitFor(async () => /cooldown to 7 s/.test(await text(user, '#message')), {what: 'player told of the new cooldown'});
    await pickColour(user, 8);
    await clickPixel(user, 71, 70);
    await waitFor(async () => /next pixel in [4-7]\./.test(await text(user, '#cooldown')), {what: '7 s cooldown shown'});
    // reset, with a confirmation
    await admin.click('#reset-btn');
    await admin.waitForSelector('#reset-dialog[open]');
    assert(await admin.locator('#reset-confirm').isDisabled(), 'confirm needs the word');
    await admin.fill('#reset-confirm-text', 'RESET');
    await shot(admin, 'admin-reset-confirmation');
    await admin.click('#reset-confirm');
    await admin.waitForSelector('#canvas-result.ok');
    await waitFor(async () => /reset the canvas/.test(await text(user, '#message')), {what: 'player told of the reset'});
    const bytes = await sameCanvas(user, api);
    assert(bytes.every((b) => b === 0), 'blank canvas');
    assertEq(await pixel(user, 70, 70), 0, 'pixel gone on the page');
    // snapshot now
    await admin.click('#snap-btn');
    await admin.waitForSelector('#canvas-result.ok, #canvas-result.error');
    const snap = await text(admin, '#canvas-result');
    assert(/Snapshot requested/.test(snap), 'snapshot: ' + snap);
    await shot(admin, 'admin-after-reset', {fullPage: true});
  } finally {
    await api.json('PUT', '/api/v1/admin/settings', {cooldownSeconds: 3},
      {token: adm.token, headers: {'X-Place-CSRF': '1'}});
  }
});

test('timelapse_page_renders_a_requested_timelapse', async ({api, worker, newPage, shot}) => {
  await needRoute(api, 'GET', '/api/v1/timelapse/snapshots');
  const start = Date.now() - 2000;
  for (let i = 0; i < 12; i++) {
    const g = await api.guest();
    assertEq((await api.place(g.token, 5 + 4 * i, 5 + 3 * i, (i % 15) + 1)).status, 201, 'placement');
  }
  await worker.ensure();
  worker.enqueue('snapshot');
  await waitFor(async () => {
    const r = await api.json('GET', '/api/v1/timelapse/snapshots?limit=5');
    return r.status === 200 && r.data.snapshots.length > 0;
  }, {timeout: 20000, what: 'a snapshot'});
  const page = await newPage({url: '/timelapse.html'});
  await page.waitForSelector('.thumb img');
  await page.waitForFunction(() => [...document.querySelectorAll('.thumb img')].some((i) => i.complete && i.naturalWidth > 0));
  await page.click('.thumb');
  const now = Date.now();
  const local = (t) => new Date(t - new Date(t).getTimezoneOffset() * 60000).toISOString().slice(0, 19);
  await page.fill('#tl-from', local(start));
  await page.fill('#tl-to', local(now + 2000));
  await page.fill('#tl-frames', '8');
  await page.fill('#tl-fps', '4');
  await page.fill('#tl-scale', '2');
  await page.check('#tl-region-on');
  await page.fill('#tl-x', '0');
  await page.fill('#tl-y', '0');
  await page.fill('#tl-w', '100');
  await page.fill('#tl-h', '80');
  await shot(page, 'timelapse-form', {fullPage: true});
  await page.click('#tl-submit');
  await page.waitForSelector('#tl-progress-box:not([hidden])');
  await page.waitForSelector('#tl-player-box:not([hidden])', {timeout: 40000});
  await page.waitForFunction(() => { const i = document.getElementById('tl-player'); return i.complete && i.naturalWidth > 0; });
  const size = await page.evaluate(() => { const i = document.getElementById('tl-player'); return [i.naturalWidth, i.naturalHeight]; });
  assertEq(size, [200, 160], 'region x scale');
  // the browser plays it: a later frame on screen shows the placements
  // (canvas drawImage only ever sees an animation's first frame, so the
  // screen is read: an element screenshot, decoded by the page itself)
  await waitFor(async () => {
    const shotPng = await page.locator('#tl-player').screenshot();
    const coloured = await page.evaluate(async (b64) => {
      const img = new Image();
      img.src = 'data:image/png;base64,' + b64;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.width; c.height = img.height;
      const x = c.getContext('2d');
      x.drawImage(img, 0, 0);
      const d = x.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200) n++;
      return n;
    }, shotPng.toString('base64'));
    if (coloured < 10 * 4) return false; // the 11 darker of the 12 pixels, 2x2 each
    fs.writeFileSync(path.join(OUT, 'timelapse-player-frame.png'), shotPng);
    return true;
  }, {timeout: 10000, every: 100, what: 'a frame with the placed pixels on screen'});
  assertEq(await page.evaluate(() => document.getElementById('tl-progress').value), 1, 'progress bar full');
  const href = await page.getAttribute('#tl-download', 'href');
  const r = await fetch(new URL(href, api.url));
  assertEq(r.status, 200, 'download');
  const png = Buffer.from(await r.arrayBuffer());
  assert(png.subarray(1, 4).toString() === 'PNG' && png.includes('acTL'), 'an animated PNG');
  assert(/#id=/.test(page.url()), 'render id in the URL');
  await shot(page, 'timelapse-page', {fullPage: true});
}, 60000);

test('a_2000x2000_canvas_stays_smooth_with_hundreds_of_updates_per_second', async ({api, newPage, shot}) => {
  await api.stop();
  resetState();
  const big = new Api('browser-api-2000', {canvas_width: 2000, canvas_height: 2000, cooldown_seconds: 0,
    ws_messages_per_s: 1000});
  await big.start();
  try {
    const page = await newPage({url: big.url + '/'});
    await live(page, 30000);
    assertEq((await state(page)).W, 2000, 'big canvas');
    const guests = [];
    for (let i = 0; i < 8; i++) guests.push(await big.guest());
    const f0 = await page.evaluate(() => window.placeDebug.frames);
    const t0 = Date.now();
    const DURATION = 4000, RATE = 400; // placements per second in all
    let sent = 0;
    // a second page opens in the middle of the load: it must catch up exactly
    const late = (async () => {
      await sleep(1500);
      const p2 = await newPage({url: big.url + '/'});
      await live(p2, 30000);
      return p2;
    })();
    await Promise.all(guests.map(async (g, k) => {
      for (let n = 0; Date.now() - t0 < DURATION; n++) {
        const due = t0 + (n * guests.length + k) * 1000 / RATE;
        if (due > Date.now()) await sleep(due - Date.now());
        const r = await big.place(g.token, Math.floor(Math.random() * 2000), Math.floor(Math.random() * 2000), 2 + (n + k) % 14);
        if (r.status === 201) sent++;
      }
    }));
    const secs = (Date.now() - t0) / 1000;
    const fps = (await page.evaluate(() => window.placeDebug.frames) - f0) / secs;
    console.log(`  ${sent} placements in ${secs.toFixed(1)} s (${(sent / secs).toFixed(0)}/s); page at ${fps.toFixed(0)} frames/s`);
    assert(sent / secs >= 200, 'hundreds of updates per second: ' + (sent / secs).toFixed(0));
    assert(fps >= 20, 'page kept painting: ' + fps.toFixed(1) + ' frames/s');
    await sameCanvas(page, big);
    const p2 = await late;
    await sameCanvas(p2, big);
    console.log(`  the page opened during the load loaded the canvas ${(await state(p2)).canvasLoads} time(s)`);
    await shot(page, 'canvas-2000x2000');
  } finally {
    await big.stop();
    resetState();
  }
}, 60000);
