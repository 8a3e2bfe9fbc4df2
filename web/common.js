// Shared by every page: REST calls, the session (guest by default), the
// sign-in / sign-up dialog, small formatting helpers. Plain script: it
// defines one global, `Place`.
'use strict';
window.Place = (() => {
  // One REST call. Returns {status, data, headers, ok}; never throws on an
  // HTTP error (status 0 when the server cannot be reached). Every request
  // that changes state carries X-Place-CSRF (the admin API requires it).
  async function api(method, path, body) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && method !== 'HEAD') headers['X-Place-CSRF'] = '1';
    let r;
    try {
      r = await fetch(path, {method, credentials: 'same-origin', headers, cache: 'no-store',
        body: body !== undefined ? JSON.stringify(body) : undefined});
    } catch (e) {
      return {status: 0, ok: false, data: null, headers: new Headers(), networkError: e};
    }
    let data = null;
    const type = r.headers.get('Content-Type') || '';
    if (type.includes('json')) {
      try { data = await r.json(); } catch (e) { data = null; }
    }
    return {status: r.status, ok: r.ok, data, headers: r.headers};
  }

  // A person-readable text for a failed call.
  function errorText(res, fallback) {
    if (!res) return fallback || 'request failed';
    if (res.status === 0) return 'the server cannot be reached';
    const e = res.data && res.data.error;
    if (res.status === 429) {
      const after = res.headers.get('Retry-After');
      if (e && e.message) return 'Too many requests: ' + e.message;
      return 'Too many requests' + (after ? ': try again in ' + after + ' s' : ': try again later');
    }
    if (e && e.message) return e.message;
    if (e && e.code) return e.code;
    return (fallback || 'request failed') + ' (HTTP ' + res.status + ')';
  }

  // The current user; creates a guest session when there is none.
  // Returns null when the server cannot be reached.
  async function session() {
    let me = await api('GET', '/api/v1/auth/me');
    if (me.status === 401) {
      const g = await api('POST', '/api/v1/auth/guest');
      if (!g.ok) return null;
      me = await api('GET', '/api/v1/auth/me');
      if (!me.ok) return g.data;
    }
    return me.ok ? me.data : null;
  }

  function shortId(id) { return id ? String(id).slice(0, 8) : '?'; }

  function userLabel(ev, myId) {
    if (myId && ev.userId === myId) return 'you';
    if (ev.username) return ev.username;
    return 'user ' + shortId(ev.userId);
  }

  // "12 s ago", "3 min ago", else the local date and time.
  function when(t) {
    const d = typeof t === 'number' ? new Date(t) : new Date(t);
    if (isNaN(d)) return String(t);
    const s = (Date.now() - d.getTime()) / 1000;
    if (s < 5) return 'just now';
    if (s < 60) return Math.round(s) + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return Math.round(s / 3600) + ' h ago';
    return d.toLocaleString();
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  // The sign-in / sign-up dialog. mode: 'login' or 'register'. Resolves
  // with the new user ({userId, username, isGuest, isAdmin}) or null when
  // the person cancels.
  function authDialog(mode) {
    return new Promise((resolve) => {
      const title = el('h2');
      const user = el('input', {name: 'username', id: 'auth-username', autocomplete: 'username',
        required: true, minlength: 3, maxlength: 32, pattern: '[A-Za-z0-9_\\-]{3,32}',
        title: '3 to 32 letters, digits, _ or -'});
      const pass = el('input', {name: 'password', id: 'auth-password', type: 'password',
        required: true, minlength: 8, maxlength: 256});
      const err = el('p', {class: 'form-error', id: 'auth-error', role: 'alert'});
      const submit = el('button', {type: 'submit', class: 'primary', id: 'auth-submit'});
      const other = el('button', {type: 'button', class: 'link', id: 'auth-switch'});
      const cancel = el('button', {type: 'button', id: 'auth-cancel', text: 'Cancel'});
      const form = el('form', {class: 'auth-form'}, title,
        el('label', {}, 'Username', user),
        el('label', {}, 'Password', pass), err,
        el('div', {class: 'buttons'}, submit, cancel), other);
      const dlg = el('dialog', {id: 'auth-dialog'}, form);
      document.body.append(dlg);
      const show = () => {
        title.textContent = mode === 'login' ? 'Log in' : 'Create an account';
        submit.textContent = mode === 'login' ? 'Log in' : 'Sign up';
        other.textContent = mode === 'login' ? 'No account yet? Sign up' : 'Have an account? Log in';
        pass.autocomplete = mode === 'login' ? 'current-password' : 'new-password';
        err.textContent = mode === 'register'
          ? 'Username: 3 to 32 letters, digits, _ or -. Password: at least 8 characters.' : '';
        err.className = 'form-hint';
      };
      const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
      other.onclick = () => { mode = mode === 'login' ? 'register' : 'login'; show(); };
      cancel.onclick = () => done(null);
      dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(null); });
      form.onsubmit = async (e) => {
        e.preventDefault();
        submit.disabled = true;
        const path = mode === 'login' ? '/api/v1/auth/login' : '/api/v1/auth/register';
        const res = await api('POST', path, {username: user.value.trim(), password: pass.value});
        submit.disabled = false;
        if (res.ok && res.data) { done(res.data); return; }
        err.className = 'form-error';
        const code = res.data && res.data.error && res.data.error.code;
        if (code === 'USERNAME_TAKEN') err.textContent = 'That username is taken: choose another.';
        else if (code === 'INVALID_CREDENTIALS') err.textContent = 'Wrong username or password.';
        else if (code === 'BANNED') err.textContent = 'This account is banned.';
        else if (res.status === 404) err.textContent = 'Accounts are not available on this server yet.';
        else err.textContent = errorText(res, 'Could not ' + (mode === 'login' ? 'log in' : 'sign up'));
      };
      show();
      dlg.showModal();
      user.focus();
    });
  }

  async function logout() {
    return api('POST', '/api/v1/auth/logout', {});
  }

  function rgb(hex) {
    const n = parseInt(String(hex).replace('#', ''), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

  return {api, errorText, session, shortId, userLabel, when, el, authDialog, logout, rgb};
})();
