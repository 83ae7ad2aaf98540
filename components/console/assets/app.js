// funnelhooks console: a single-page app over the management API. No framework and no
// bundler: the component's build only strips indentation and comment lines and gzips it
// (components/console/build.rs). Every value from the API is written into the page as
// text (textContent / DOM nodes), never as HTML, because dialog fields come from public
// postbacks.
'use strict';

(() => {
  const RU = (window.FH_I18N && window.FH_I18N.ru) || {};
  const main = document.getElementById('main');
  const langSelect = document.getElementById('lang');
  const signOutButton = document.getElementById('signout');
  const TOKEN_KEY = 'fh.token';
  const ME_KEY = 'fh.me';
  const LANG_KEY = 'fh.lang';

  // ---- language -------------------------------------------------------------------------
  let lang = localStorage.getItem(LANG_KEY) || ((navigator.language || '').startsWith('ru') ? 'ru' : 'en');

  /** The text in the chosen language, with {name} placeholders filled in. */
  function t(text, vars) {
    let out = (lang === 'ru' && RU[text]) || text;
    if (vars) {
      for (const [k, v] of Object.entries(vars)) out = out.split('{' + k + '}').join(String(v));
    }
    return out;
  }

  // ---- DOM ------------------------------------------------------------------------------
  /** An element; strings among the children become text nodes, never markup. */
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  let fieldSeq = 0;
  /** A labelled control; `name` is the API member it edits, so errors can find it. */
  function field(label, control, hint) {
    const id = 'f' + (++fieldSeq);
    control.id = id;
    const kids = [h('label', { for: id }, label), control];
    if (hint) {
      control.setAttribute('aria-describedby', id + 'h');
      kids.push(h('small', { class: 'muted', id: id + 'h' }, hint));
    }
    return h('div', { class: 'field' }, kids);
  }
  function input(name, value, attrs) {
    return h('input', Object.assign({ type: 'text', name, value: value == null ? '' : value }, attrs || {}));
  }
  function select(name, options, value, attrs) {
    const el = h('select', Object.assign({ name }, attrs || {}),
      options.map(([v, label]) => h('option', { value: v }, label)));
    el.value = value == null ? options[0][0] : value;
    return el;
  }
  /** A button; an action that fails says why in a toast, in plain words (a form's errors go
   * next to their field instead). */
  function button(label, onclick, cls, attrs) {
    const act = onclick && (async (ev) => {
      try {
        await onclick(ev);
      } catch (e) {
        if (e.status !== 401) toast(plainError(e));
      }
    });
    return h('button', Object.assign({ type: 'button', class: cls, onclick: act }, attrs || {}), label);
  }
  function badge(text, cls) { return h('span', { class: 'badge ' + (cls || text) }, t(text)); }
  function when(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleString(lang === 'ru' ? 'ru-RU' : 'en-GB');
  }
  function enc(s) { return encodeURIComponent(s); }
  let toastTimer;
  function toast(text) {
    const el = document.getElementById('toast');
    el.textContent = text;
    el.classList.add('show');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => el.classList.remove('show'), 2500);
  }
  /** Copies text; falls back to a selected field when the clipboard is not allowed. */
  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      const tmp = h('textarea', { readonly: true }, text);
      document.body.append(tmp);
      tmp.select();
      document.execCommand('copy');
      tmp.remove();
    }
    toast(t('Copied'));
  }
  /** The link id in what was pasted: a bare id, or a whole Chatterfy postback URL. */
  function linkIdOf(pasted) {
    const text = pasted.trim();
    const inUrl = text.match(/\/webhooks\/([^/?#\s]+)\/updateDialog/);
    if (!inUrl) return text;
    try { return decodeURIComponent(inUrl[1]); } catch (_) { return inUrl[1]; }
  }
  /** A link a viewer's key may not see: that it exists, and how its id starts. */
  function hiddenLink(l) {
    return h('span', { class: 'muted', title: t('A viewer\'s key does not see link URLs: they can change dialogs.') }, l.id);
  }
  function copyButton(text, label) {
    return button(label || t('Copy'), () => copy(text), null, { 'data-copy': text, 'data-reads': true });
  }

  // ---- API ------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || ('HTTP ' + status));
      this.status = status;
      this.code = e.code || null;
      this.field = e.field || null;
      this.position = e.position;
    }
  }
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }
  /** Who signed in (GET /api/me): role and scope, so the console shows only what the key may do. */
  function me() {
    try { return JSON.parse(sessionStorage.getItem(ME_KEY) || 'null'); } catch (_) { return null; }
  }
  function isAdmin() { const m = me(); return !m || m.role === 'admin'; }
  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ME_KEY);
    location.hash = '#/signin';
  }
  // Forms that only read (search, filters, previews): a viewer keeps them.
  const READ_FORMS = ['signin', 'find-dialog', 'delivery-filters', 'preview-form', 'audit-filters', 'postback-form'];
  // Forms that show a configuration: a viewer sees them read-only.
  const SHOWN_FORMS = ['step-form', 'hook-form', 'auto-actions'];
  /**
   * Hides what the signed-in key may not do: a viewer's forms are read-only and its action
   * buttons gone; only an admin sees admin actions; creating a bot or a service takes a key
   * scoped to all of them. The API refuses all of it anyway; this keeps the page honest.
   */
  function applyRole(root) {
    const m = me();
    if (!m || m.role === 'admin') return;
    root.querySelectorAll('[data-admin]').forEach((el) => { el.hidden = true; });
    if (m.bots !== 'all') root.querySelectorAll('#create-bot').forEach((el) => { el.hidden = true; });
    if (m.services !== 'all') root.querySelectorAll('#create-service').forEach((el) => { el.hidden = true; });
    if (m.role !== 'viewer') return;
    root.querySelectorAll('form').forEach((f) => {
      if (READ_FORMS.includes(f.id)) return;
      if (SHOWN_FORMS.includes(f.id)) {
        f.querySelectorAll('input, select, textarea').forEach((el) => { el.disabled = true; });
        return;
      }
      // A form that only adds or changes something: gone, with the box it sits in.
      f.hidden = true;
      const box = f.closest('details') || f.closest('.card');
      if (box && ![...box.children].some((c) => !c.hidden && c.tagName !== 'SUMMARY')) box.hidden = true;
    });
    root.querySelectorAll('button').forEach((b) => {
      const f = b.closest('form');
      if (b.hasAttribute('data-reads') || (f && READ_FORMS.includes(f.id))) return;
      b.hidden = true;
    });
  }
  new MutationObserver(() => applyRole(main)).observe(main, { childList: true, subtree: true });

  /** One API call with the admin token; a 401 ends the session. */
  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + token() };
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, { error: { message: t('The app does not answer: {e}', { e: e.message }) } });
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (res.status === 401) {
      signOut();
      throw new ApiError(401, data);
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  // The API's error codes in plain words, in the chosen language; a code not here shows the
  // API's own message. The codes stay for machines (data-code on the message).
  const ERROR_TEXTS = {
    unauthorized: () => t('This key no longer works: sign in again.'),
    missing_field: () => t('Required: fill this in.'),
    unknown_field: () => t('There is no such field.'),
    wrong_type: () => t('This value has the wrong type.'),
    bad_json: () => t('The request could not be read.'),
    value_too_long: () => t('This value is too long.'),
    too_long: () => t('This value is too long.'),
    bad_template: () => t('This template has a mistake.'),
    malformed_template: () => t('A brace opens a variable and does not close it: write {name}, or {{"{"}} for a literal brace.'),
    variable_in_host: () => t('A variable cannot decide where the request goes: keep variables out of the address\'s host.'),
    refused_target: () => t('Webhooks cannot go to this address (a private or local network).'),
    bad_url: () => t('This is not a web address: it starts with http:// or https://.'),
    bad_host: () => t('This is not a host name or address.'),
    bad_port: () => t('A port is a number from 1 to 65535.'),
    bad_path: () => t('This path cannot be used.'),
    bad_method: () => t('Choose GET, POST, PUT, PATCH or DELETE.'),
    unknown_bot: () => t('This bot does not exist (or was deleted).'),
    unknown_step: () => t('This bot has no such step.'),
    unknown_dialog: () => t('This bot has no dialog with this chat.'),
    unknown_webhook: () => t('This postback link does not exist (or was revoked).'),
    unknown_service: () => t('This service does not exist (or was deleted).'),
    unknown_hook: () => t('This hook does not exist (or was deleted).'),
    unknown_delivery: () => t('This delivery does not exist.'),
    unknown_key: () => t('This key does not exist (or was revoked).'),
    unknown_id: () => t('One of these does not exist.'),
    postback_id_in_use: () => t('Another bot already has this link id.'),
    guessable_postback_id: () => t('This id is too easy to guess to be a link\'s secret.'),
    bad_postback_id: () => t('This is not a link id: paste the id or the whole postback URL.'),
    too_many_webhooks: () => t('This bot has as many postback links as it can: revoke one first.'),
    too_many_steps: () => t('This bot has as many steps as it can.'),
    too_many_fields: () => t('This bot has as many custom fields as it can.'),
    too_many_hooks: () => t('This service has as many hooks as it can.'),
    too_many_keys: () => t('There are as many keys as there can be: revoke one first.'),
    read_only_key: () => t('Your key may read, not change.'),
    admin_only: () => t('Only an admin may do this.'),
    scope_too_narrow: () => t('Your key reaches some bots only: it cannot create new ones.'),
    admin_scope: () => t('An admin key reaches everything: choose editor or viewer for fewer bots.'),
    bad_scope: () => t('Choose bots or services from the list, or all.'),
    bad_name: () => t('A name is 1 to 100 characters.'),
    bad_role: () => t('Choose viewer, editor or admin.'),
    bad_chat_id: () => t('A chat id is a whole number.'),
    bad_step_id: () => t('A step id is a UUID, as Chatterfy shows it: 8-4-4-4-12 hex digits.'),
    bad_key: () => t('A key is 1 to 64 of A-Z a-z 0-9 _ -.'),
    bad_field_type: () => t('Choose string, number, boolean or date.'),
    secret_not_carried: () => t('The address changed: enter the secret value again (a saved secret is never sent to a new address).'),
    step_in_auto_actions: () => t('An auto action moves dialogs to this step: change that action first.'),
    nothing_to_replay: () => t('This delivery was never sent: send the step again instead.'),
    store_unavailable: () => t('The store does not answer: try again in a moment.'),
    bad_secret: () => t('A signing secret starts with whsec_ (or use Generate a secret).'),
    reserved_header: () => t('This header is set by funnelhooks itself.'),
    body_with_get: () => t('A GET request has no body: choose POST or remove the body.'),
    retry_due_soon: () => t('Its next attempt is due within a minute, or being made: the retry sweep sends it.'),
    retry_not_now: () => t('It cannot go now: its step or hook is paused, or it waits for a rate limit or for the time the receiver asked.'),
    not_retrying: () => t('This delivery is not waiting for a retry: replay it to send it again.'),
    not_a_webhook_step: () => t('This step sends no webhook.'),
    bad_status: () => t('Write auto, manual or blocked.'),
    // What trackers and telephony sides send wrong (refused postbacks and call events).
    not_a_number_field: () => t('This field is a number: write digits, with a point for a fraction (5000, 12.5), no spaces or commas.'),
    bad_value: () => t('This value does not fit the field\'s type.'),
    missing_chat_id: () => t('The chat id is missing: add chatId={…} with the tracker\'s macro for it.'),
    bad_tag: () => t('A tag is 1 to 64 of A-Z a-z 0-9 _ -.'),
    bad_start_payload: () => t('The start payload does not fit the bot\'s rule.'),
    too_many_tags: () => t('A dialog holds at most 64 tags.'),
    too_many_tracker_fields: () => t('A dialog holds no more tracker fields.'),
    dialog_too_large: () => t('The dialog is full: erase fields it no longer needs.'),
    bad_body: () => t('The body could not be read: send JSON or a form.'),
    bad_form: () => t('The form could not be read.'),
    bad_encoding: () => t('The request is not valid UTF-8 text.'),
    unsupported_media_type: () => t('Send JSON or a form (application/json, application/x-www-form-urlencoded).'),
    too_large: () => t('The request is too large.'),
    body_too_large: () => t('The request is too large.'),
    missing_call_id: () => t('The call id is missing: CallKeeper sends it as id.'),
    bad_call_id: () => t('The call id is not one CallKeeper sends.'),
    missing_event: () => t('Which event it is is missing: CallKeeper sends it as hook_event.'),
    unknown_event: () => t('Unknown event: expected "Call is processing" or "Call is over".'),
    conflicting_event: () => t('The request names two different events.'),
    bad_ingest_key: () => t('Wrong ingest key: was it rotated? Put the new URL into the telephony side.'),
    missing_ingest_key: () => t('No ingest key: use the URL with the key in its path.')
  };
  /** An API error in plain words in the chosen language, else the API's own sentence. */
  function plainError(err) {
    return err.code && ERROR_TEXTS[err.code] ? ERROR_TEXTS[err.code]() : err.message;
  }
  /** Shows an API error next to the control it names, or at the top of the form. */
  function showError(form, err) {
    clearErrors(form);
    let target = null;
    if (err.field) {
      let name = err.field;
      while (name && !target) {
        target = form.querySelector('[name="' + CSS.escape(name) + '"]');
        const cut = Math.max(name.lastIndexOf('.'), name.lastIndexOf('['));
        name = cut > 0 ? name.slice(0, cut) : '';
      }
    }
    const plain = err.code && ERROR_TEXTS[err.code] ? ERROR_TEXTS[err.code]() : null;
    let message = plainError(err);
    if (err.position != null) message += ' ' + t('(at character {n})', { n: err.position + 1 });
    const msg = h('div', { class: 'error', role: 'alert', id: 'err' + (++fieldSeq), 'data-code': err.code || null },
      message, plain && lang === 'en' && err.message && err.message !== plain ? h('small', { class: 'muted detail' }, ' ' + err.message) : null);
    if (target) {
      target.setAttribute('aria-invalid', 'true');
      target.setAttribute('aria-describedby', msg.id);
      target.insertAdjacentElement('afterend', msg);
      target.focus();
    } else {
      msg.classList.add('banner');
      form.prepend(msg);
    }
  }
  function clearErrors(form) {
    form.querySelectorAll('.error').forEach((e) => e.remove());
    form.querySelectorAll('[aria-invalid]').forEach((e) => {
      e.removeAttribute('aria-invalid');
      e.removeAttribute('aria-describedby');
    });
  }
  /** A form whose submit runs `action`; errors land next to their field. */
  function form(attrs, children, action) {
    const f = h('form', Object.assign({ novalidate: true }, attrs || {}), children);
    // Editing a control the API named takes its error away.
    f.addEventListener('input', (ev) => {
      const el = ev.target;
      if (el.getAttribute && el.getAttribute('aria-invalid') === 'true') {
        const msg = document.getElementById(el.getAttribute('aria-describedby'));
        if (msg && msg.classList.contains('error')) msg.remove();
        el.removeAttribute('aria-invalid');
        el.removeAttribute('aria-describedby');
      }
    });
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(f);
      // A required control left empty is named here, before anything is sent.
      const empty = [...f.querySelectorAll('[required]')].find((el) => !el.closest('[hidden]') && !el.disabled && !String(el.value).trim());
      if (empty) {
        showError(f, new ApiError(0, { error: { field: empty.name, code: 'missing_field', message: t('Required: fill this in.') } }));
        return;
      }
      const submit = f.querySelector('button[type=submit]');
      if (submit) submit.disabled = true;
      try {
        await action(f);
      } catch (e) {
        if (e.status !== 401) showError(f, e);
      } finally {
        if (submit) submit.disabled = false;
      }
    });
    return f;
  }
  function errorBanner(e) { return h('div', { class: 'banner error', role: 'alert' }, e.message); }

  // ---- layout and routing ---------------------------------------------------------------
  function renderNav(section) {
    const nav = document.getElementById('nav');
    const items = [['bots', '#/bots', t('Bots')], ['calls', '#/calls', t('Call tracking')],
      ['deliveries', '#/deliveries', t('Deliveries')]];
    if (isAdmin()) {
      items.push(['attention', '#/attention', t('Needs attention')], ['keys', '#/keys', t('API keys')],
        ['audit', '#/audit', t('Audit trail')]);
    }
    const m = me();
    nav.replaceChildren(...(token() ? items.map(([key, href, label]) =>
      h('a', { href, 'aria-current': key === section ? 'page' : null }, label)) : []),
      ...(token() && m ? [h('span', { class: 'muted', id: 'whoami' },
        t('{name}, {role}', { name: m.keyId ? m.name : t('admin token'), role: t(m.role) }))] : []));
    signOutButton.hidden = !token();
    signOutButton.textContent = t('Sign out');
  }
  function page(title, ...children) {
    document.title = title + ' · funnelhooks';
    return [h('h1', { tabindex: '-1' }, title), ...children];
  }
  function crumbs(...links) {
    return h('p', { class: 'muted' }, links.map(([href, label], i) =>
      [i ? ' / ' : null, href ? h('a', { href }, label) : label]));
  }
  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const [path, query] = raw.split('?');
    return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query || '') };
  }

  // ---- the installation's health, on every page -----------------------------------------
  let healthAt = 0;
  /** What /api/health says an operator must act on, in plain words; at most every 30 s. */
  async function checkHealth() {
    if (Date.now() - healthAt < 30000) return;
    healthAt = Date.now();
    const box = document.getElementById('health');
    let hl;
    try {
      const res = await fetch('/api/health');
      hl = await res.json();
    } catch (_) {
      hl = { status: 'degraded' };
    }
    const notes = [];
    if (hl.status === 'degraded') notes.push(t('The key-value store does not answer: postbacks and deliveries fail until it is back.'));
    const sw = hl.sweep || {};
    if (sw.overdue > 0 && (sw.secondsSinceLastRun == null || sw.secondsSinceLastRun > 300)) {
      notes.push(sw.secondsSinceLastRun == null
        ? t('{n} deliveries are overdue and the retry sweep has never run. Schedule POST /api/deliveries/retry-due every minute.', { n: sw.overdue })
        : t('{n} deliveries are overdue and the retry sweep last ran {m} min ago. Schedule POST /api/deliveries/retry-due every minute.', { n: sw.overdue, m: Math.floor(sw.secondsSinceLastRun / 60) }));
    }
    if (hl.outbound && hl.outbound.privateNetworks === 'open') notes.push(t('Outbound requests to private networks are not blocked, so webhooks to host names are refused. Run the app with block_networks = ["private"].'));
    box.replaceChildren(...notes.map((n) => h('p', { class: 'banner warn' }, n)));
    box.hidden = !notes.length;
  }

  let renderSeq = 0;
  async function route() {
    const seq = ++renderSeq;
    const { parts, query } = parseHash();
    if (!token() && parts[0] !== 'signin') {
      // Back to where the link pointed, once signed in.
      if (location.hash && location.hash !== '#/') sessionStorage.setItem('fh.next', location.hash);
      location.hash = '#/signin';
      return;
    }
    if (token() && !me()) {
      try { sessionStorage.setItem(ME_KEY, JSON.stringify(await api('GET', '/api/me'))); } catch (_) { return; }
    }
    const section = parts[0] || 'bots';
    renderNav(section);
    if (token()) checkHealth();
    let view;
    try {
      view = await dispatch(parts, query);
    } catch (e) {
      if (e.status === 401) return;
      view = page(t('Something went wrong'), errorBanner(e));
    }
    if (seq !== renderSeq) return; // a later navigation won
    main.replaceChildren(...[view].flat(Infinity).filter((x) => x != null && x !== false));
    const h1 = main.querySelector('h1');
    if (h1) h1.focus({ preventScroll: true });
  }
  function dispatch(p, q) {
    switch (p[0] || 'bots') {
      case 'signin': return signIn();
      case 'bots':
        if (!p[1]) return botsPage();
        if (p[2] === 'steps' && p[3]) return stepEditor(p[1], p[3]);
        if (p[2] === 'dialogs' && p[3]) return dialogPage(p[1], p[3]);
        return botPage(p[1], p[2] || 'links', q);
      case 'deliveries': return p[1] ? deliveryPage(p[1]) : deliveriesPage(q);
      case 'attention': return attentionPage();
      case 'keys': return keysPage();
      case 'audit': return auditPage(q);
      case 'calls':
        if (!p[1]) return servicesPage();
        if (p[2] === 'hooks' && p[3]) return hookEditor(p[1], p[3]);
        return servicePage(p[1]);
      default: return page(t('Not found'), h('p', null, t('There is no such screen.')));
    }
  }

  // ---- sign-in --------------------------------------------------------------------------
  function signIn() {
    const tokenInput = input('token', '', { type: 'password', autocomplete: 'current-password', required: true });
    return page(t('Sign in'), h('div', { class: 'card' },
      h('p', null, t('Sign in with the admin token (the app\'s admin_token variable) or with an API key an admin made for you. It is kept in this tab only.')),
      form({ id: 'signin' }, [field(t('Admin token or API key'), tokenInput),
        h('button', { type: 'submit', class: 'primary' }, t('Sign in'))], async () => {
        const value = tokenInput.value.trim();
        if (!value) throw new ApiError(422, { error: { field: 'token', message: t('Enter the token.') } });
        const res = await fetch('/api/me', { headers: { Authorization: 'Bearer ' + value } });
        if (res.status === 401) throw new ApiError(422, { error: { field: 'token', code: 'bad_token', message: t('This is neither the admin token nor a working API key.') } });
        if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
        sessionStorage.setItem(TOKEN_KEY, value);
        sessionStorage.setItem(ME_KEY, JSON.stringify(await res.json()));
        const next = sessionStorage.getItem('fh.next');
        sessionStorage.removeItem('fh.next');
        location.hash = next && next.startsWith('#/') && !next.startsWith('#/signin') ? next : '#/bots';
      })));
  }

  // ---- bots -----------------------------------------------------------------------------
  async function botsPage() {
    const list = await api('GET', '/api/bots?limit=200');
    const name = input('name', '', { required: true, maxlength: 200 });
    const rows = list.items.map((b) => h('tr', null,
      h('td', null, h('a', { href: '#/bots/' + enc(b.id) }, b.name)),
      h('td', { class: 'opt' }, String(b.webhooks)), h('td', { class: 'opt' }, String(b.fields)),
      h('td', { class: 'opt' }, String(b.steps)), h('td', { class: 'opt' }, when(b.createdAt)),
      h('td', null, button(t('Delete'), async () => {
        if (!confirm(t('Delete the bot "{name}"? Its postback links stop at once, its steps and field definitions go, its dialogs are erased in the background; its deliveries stay in the log.', { name: b.name }))) return;
        await api('DELETE', '/api/bots/' + enc(b.id));
        toast(t('Deleted'));
        route();
      }, 'danger', { 'aria-label': t('Delete') + ' ' + b.name }))));
    return page(t('Bots'),
      h('div', { class: 'card' }, form({ id: 'create-bot' }, [h('div', { class: 'row' },
        h('div', { class: 'grow' }, field(t('New bot name'), name)),
        h('button', { type: 'submit', class: 'primary' }, t('Create bot')))], async () => {
        const bot = await api('POST', '/api/bots', { name: name.value });
        location.hash = '#/bots/' + enc(bot.id);
      })),
      list.items.length ? h('div', { class: 'card table-wrap' }, h('table', null,
        h('thead', null, h('tr', null, h('th', null, t('Name')), h('th', { class: 'opt' }, t('Postback links')),
          h('th', { class: 'opt' }, t('Custom fields')), h('th', { class: 'opt' }, t('Steps')),
          h('th', { class: 'opt' }, t('Created')), h('th', null, ''))),
        h('tbody', null, rows))) : h('p', { class: 'muted' }, t('No bots yet: create the first one above.')));
  }

  const BOT_TABS = [['links', 'Postback links'], ['fields', 'Custom fields'], ['steps', 'Steps'], ['dialogs', 'Dialogs'], ['auto', 'Auto actions']];

  async function botPage(botId, tab, q) {
    const bot = await api('GET', '/api/bots/' + enc(botId));
    const name = input('name', bot.name, { required: true });
    const tabs = h('nav', { class: 'tabs', 'aria-label': t('Bot settings') },
      BOT_TABS.map(([key, label]) => h('a', { href: '#/bots/' + enc(botId) + '/' + key, 'aria-current': key === tab ? 'page' : null }, t(label))),
      h('a', { href: '#/deliveries?botId=' + enc(botId) }, t('Deliveries')));
    const body = await ({ links: linksTab, fields: fieldsTab, steps: stepsTab, dialogs: dialogsTab, auto: autoTab }[tab] || linksTab)(bot, q);
    return page(bot.name,
      crumbs(['#/bots', t('Bots')], [null, bot.name]),
      h('details', { class: 'card' }, h('summary', null, t('Rename')),
        form({ id: 'rename-bot' }, [h('div', { class: 'row' }, h('div', { class: 'grow' }, field(t('Name'), name)),
          h('button', { type: 'submit' }, t('Save')))], async () => {
          await api('PATCH', '/api/bots/' + enc(botId), { name: name.value });
          toast(t('Saved'));
          route();
        })),
      tabs, body);
  }

  async function linksTab(bot) {
    const [{ items }, refused] = await Promise.all([api('GET', '/api/bots/' + enc(bot.id) + '/webhooks'),
      api('GET', '/api/bots/' + enc(bot.id) + '/refused-postbacks?limit=20')]);
    const importId = input('postbackId', '', { placeholder: '55833627-242e-4061-9b0a-30da3e9cf7d4' });
    return h('section', { 'aria-label': t('Postback links') },
      h('p', { class: 'muted' }, t('Paste a link into the tracker as its postback URL; add parameters such as ?chatId={chatId}&stepId=… there.')),
      h('div', { class: 'actions' }, button(t('Add postback link'), async () => {
        await api('POST', '/api/bots/' + enc(bot.id) + '/webhooks');
        toast(t('Link created'));
        route();
      }, 'primary', { id: 'add-link' })),
      items.length ? h('div', { class: 'card table-wrap' }, h('table', { id: 'links' },
        h('thead', null, h('tr', null, h('th', null, t('URL')), h('th', { class: 'opt' }, t('Created')), h('th', null, ''))),
        h('tbody', null, items.map((l) => h('tr', null,
          h('td', { class: 'mono link-url' }, l.hidden ? hiddenLink(l) : l.url),
          h('td', { class: 'opt' }, when(l.createdAt)),
          h('td', null, h('div', { class: 'actions' }, l.hidden ? null : copyButton(l.url),
            button(t('Revoke'), async () => {
              if (!confirm(t('Revoke this link? Trackers calling it get 404 from now on.'))) return;
              await api('DELETE', '/api/bots/' + enc(bot.id) + '/webhooks/' + enc(l.id));
              route();
            }, 'danger')))))))) : h('p', { class: 'muted' }, t('No postback links yet.')),
      h('details', { class: 'card' }, h('summary', null, t('Import a Chatterfy link id')),
        form({ id: 'import-link' }, [h('p', { class: 'muted' }, t('Moving from Chatterfy: import the id from the old URL, and trackers keep working with only the origin changed.')),
          h('div', { class: 'row' }, h('div', { class: 'grow' }, field(t('Link id'), importId)),
            h('button', { type: 'submit' }, t('Import')))], async () => {
          await api('PUT', '/api/bots/' + enc(bot.id) + '/webhooks/' + enc(linkIdOf(importId.value)));
          toast(t('Link imported'));
          route();
        })),
      refusedPostbacks(refused.items));
  }

  /** A query as people read it: %2C as ",", + as a space (as sent when it cannot be read so). */
  /** What was sent, readable: a query or form decoded (`+` a space), a JSON body as it came. */
  function readable(sent) {
    if (/^\s*[{[]/.test(sent)) return sent;
    return sent.split(' ').map((part) => {
      if (/^\s*[{[]/.test(part)) return part;
      try { return decodeURIComponent(part.replace(/\+/g, ' ')); } catch (_) { return part; }
    }).join(' ');
  }
  /** What the bot's links refused lately, and why: what a tracker sends wrong. */
  function refusedPostbacks(items) {
    return refusedTable(items, 'refused', t('Refused postbacks'),
      t('The newest postbacks this bot\'s links refused (100 are kept). A tracker got the same answer.'),
      t('None lately: every postback was taken.'));
  }
  /** The newest requests a sender had refused: when, why in plain words, what was sent. */
  function refusedTable(items, id, title, intro, none) {
    return h('section', { class: 'card', id }, h('h2', null, title),
      items.length ? [h('p', { class: 'muted' }, intro),
        h('div', { class: 'table-wrap' }, h('table', null,
          h('thead', null, h('tr', null, h('th', null, t('When')), h('th', null, t('Why')), h('th', { class: 'opt' }, t('What was sent')))),
          h('tbody', null, items.map((r) => h('tr', null,
            h('td', null, when(r.at)),
            h('td', null, r.field ? h('span', { class: 'mono' }, r.field + ': ') : null,
              ERROR_TEXTS[r.code] ? [ERROR_TEXTS[r.code](), lang === 'en' ? [h('br'), h('small', { class: 'muted detail', title: t('The answer the sender got') }, r.message)] : null] : r.message),
            h('td', { class: 'mono refused-sent' }, r.method + ' ' + readable(r.sent)))))))]
        : h('p', { class: 'muted' }, none));
  }

  const fieldTypes = () => [['string', t('string')], ['number', t('number')], ['boolean', t('boolean')], ['date', t('date')]];

  async function fieldsTab(bot) {
    const { items } = await api('GET', '/api/bots/' + enc(bot.id) + '/fields');
    const key = input('key', '', { pattern: '[A-Za-z0-9_-]{1,64}', autocomplete: 'off', required: true });
    const type = select('type', fieldTypes(), 'string');
    const description = input('description', '');
    return h('section', { 'aria-label': t('Custom fields') },
      h('div', { class: 'card' }, form({ id: 'add-field' }, [h('div', { class: 'row' },
        h('div', { class: 'grow' }, field(t('Key'), key)), h('div', null, field(t('Type'), type)),
        h('div', { class: 'grow' }, field(t('Description'), description)),
        h('button', { type: 'submit', class: 'primary' }, t('Save field')))], async () => {
        if (!key.value.trim()) throw new ApiError(422, { error: { field: 'key', code: 'missing_field', message: t('Enter the key.') } });
        await api('PUT', '/api/bots/' + enc(bot.id) + '/fields/' + enc(key.value.trim()),
          { type: type.value, description: description.value });
        toast(t('Saved'));
        route();
      })),
      items.length ? h('div', { class: 'card table-wrap' }, h('table', { id: 'fields' },
        h('thead', null, h('tr', null, h('th', null, t('Key')), h('th', null, t('Type')), h('th', null, t('Description')), h('th', null, ''))),
        h('tbody', null, items.map((f) => h('tr', null, h('td', { class: 'mono' }, f.key), h('td', null, t(f.type)),
          h('td', null, f.description || ''), h('td', null, h('div', { class: 'actions' },
            // Editing fills the form above: saving the same key changes its type or description.
            button(t('Edit'), () => {
              key.value = f.key;
              type.value = f.type;
              description.value = f.description || '';
              type.focus();
            }, null, { 'aria-label': t('Edit') + ' ' + f.key }),
            button(t('Delete'), async () => {
              if (!confirm(t('Remove the definition of "{key}"? Stored values stay.', { key: f.key }))) return;
              await api('DELETE', '/api/bots/' + enc(bot.id) + '/fields/' + enc(f.key));
              route();
            }, 'danger')))))))) : h('p', { class: 'muted' }, t('No custom fields yet.')));
  }

  function kindLabel(kind) {
    return kind === 'send-webhook' ? t('Send webhook') : kind === 'message' ? t('Message') : kind;
  }

  async function stepsTab(bot) {
    const { items } = await api('GET', '/api/bots/' + enc(bot.id) + '/steps');
    return h('section', { 'aria-label': t('Steps') },
      h('div', { class: 'actions' }, h('a', { href: '#/bots/' + enc(bot.id) + '/steps/new', class: 'button', id: 'new-step' }, t('Create step'))),
      items.length ? h('div', { class: 'card table-wrap' }, h('table', { id: 'steps' },
        h('thead', null, h('tr', null, h('th', null, t('Key')), h('th', { class: 'opt' }, t('Step id')), h('th', null, t('Kind')), h('th', { class: 'opt' }, t('Webhook')), h('th', null, ''))),
        h('tbody', null, items.map((s) => h('tr', null,
          h('td', null, h('a', { href: '#/bots/' + enc(bot.id) + '/steps/' + enc(s.id) }, s.key || s.id)),
          h('td', { class: 'opt' }, h('span', { class: 'mono step-id' }, s.id), ' ', copyButton(s.id)),
          h('td', null, kindLabel(s.kind), s.webhookGone ? [' ', badge('gone')] : null, stateBadge(s.deliveryState)),
          h('td', { class: 'opt mono' }, s.webhook ? s.webhook.method + ' ' + s.webhook.url : ''),
          h('td', null, h('div', { class: 'actions' },
            h('a', { href: '#/deliveries?botId=' + enc(bot.id) + '&stepId=' + enc(s.id) }, t('Deliveries')),
            button(t('Delete'), async () => {
              if (!confirm(t('Delete the step "{key}"? Postbacks that name it (stepId={id}) are refused from then on.', { key: s.key || s.id, id: s.id }))) return;
              await api('DELETE', '/api/bots/' + enc(bot.id) + '/steps/' + enc(s.id));
              route();
            }, 'danger')))))))) : h('p', { class: 'muted' }, t('No steps yet.')));
  }

  async function dialogsTab(bot, q) {
    const cursor = q.get('cursor');
    const search = (q.get('q') || '').trim();
    const base = '#/bots/' + enc(bot.id) + '/dialogs';
    const list = await api('GET', '/api/bots/' + enc(bot.id) + '/dialogs?limit=50' + (cursor ? '&cursor=' + enc(cursor) : '') + (search ? '&q=' + enc(search) : ''));
    const chat = input('q', search, { autocomplete: 'off', placeholder: '1227280, @ivan_petrov, 3k2h5f1a2b' });
    const more = new URLSearchParams();
    if (search) more.set('q', search);
    if (list.nextCursor) more.set('cursor', list.nextCursor);
    return h('section', { 'aria-label': t('Dialogs') },
      h('div', { class: 'card' }, form({ id: 'find-dialog' }, [h('div', { class: 'row' },
        h('div', { class: 'grow' }, field(t('Chat id, username, name or click id'), chat)), h('button', { type: 'submit', class: 'primary' }, t('Find')),
        search ? h('a', { href: base }, t('All dialogs')) : null)], async () => {
        const text = chat.value.trim();
        if (!text) throw new ApiError(422, { error: { field: 'q', code: 'missing_field', message: t('Required: fill this in.') } });
        // A chat id opens its dialog at once when there is one.
        if (/^-?\d{1,19}$/.test(text)) {
          const found = await api('GET', '/api/bots/' + enc(bot.id) + '/dialogs?limit=50&q=' + enc(text));
          const exact = found.items.filter((d) => String(d.chatId) === text);
          if (exact.length === 1 && found.items.length === 1) { location.hash = base + '/' + enc(text); return; }
        }
        location.hash = base + '?q=' + enc(text);
      })),
      search ? h('p', { class: 'muted', id: 'search-note' }, list.items.length
        ? t('Dialogs matching "{q}": the chat id, username, a part of the name, or a tracker or text field\'s exact value.', { q: search })
        : list.nextCursor ? t('None among the dialogs looked at so far.') : t('No dialog matches "{q}".', { q: search })) : null,
      list.items.length ? h('div', { class: 'card table-wrap' }, h('table', { id: 'dialogs' },
        h('thead', null, h('tr', null, h('th', null, t('Chat id')), h('th', null, t('Name (Telegram)')), h('th', { class: 'opt' }, t('Step')),
          h('th', { class: 'opt' }, t('Status')), h('th', null, t('Started')), h('th', { class: 'opt' }, t('Updated')))),
        h('tbody', null, list.items.map((d) => h('tr', null,
          h('td', null, h('a', { href: '#/bots/' + enc(bot.id) + '/dialogs/' + enc(d.chatId) }, String(d.chatId))),
          h('td', null, d.name || '', d.username ? ' @' + d.username : ''),
          h('td', { class: 'opt' }, d.stepKey || ''), h('td', { class: 'opt' }, t(d.status)),
          h('td', null, d.started ? t('started') : badge('pending')), h('td', { class: 'opt' }, when(d.updatedAt))))))) : search ? null : h('p', { class: 'muted' }, t('No dialogs yet.')),
      list.nextCursor ? h('a', { href: base + '?' + more }, search ? t('Look further') : t('Next page')) : null);
  }

  // ---- Auto actions: conversions by click id, the deep link's payload --------------------
  const DIALOG_STATUSES = [['', '—'], ['auto', 'auto'], ['manual', 'manual'], ['blocked', 'blocked']];
  const PAYLOAD_FORMS = [['whole', 'The whole payload is the click id'], ['pattern', 'A pattern: CODE-{clickid}'],
    ['pairs', 'key__value pairs'], ['base64Json', 'base64url JSON']];

  /** `{a: 1, b: "{payout}"}` as editable lines `a = 1`, and back. */
  function linesOf(obj) { return Object.entries(obj || {}).map(([k, v]) => k + ' = ' + v).join('\n'); }
  function objectOf(text, name) {
    const out = {};
    for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
      const at = line.indexOf('=');
      if (at < 1) throw new ApiError(422, { error: { field: name, code: 'bad_line', message: t('Write one field per line: key = value') } });
      out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    return out;
  }

  async function autoTab(bot) {
    const base = '/api/bots/' + enc(bot.id);
    const [auto, links, steps] = await Promise.all([api('GET', base + '/auto-actions'),
      api('GET', base + '/conversion-links'), api('GET', base + '/steps')]);
    const stepOptions = [['', '—']].concat(steps.items.map((s) => [s.id, (s.key || s.id) + (s.kind === 'send-webhook' ? ' ↗' : '')]));
    const clickField = input('clickIdField', auto.clickIdField, { required: true });
    const names = {
      clickId: input('params.clickId', auto.params.clickId.join(', ')),
      type: input('params.type', auto.params.type.join(', ')),
      tid: input('params.tid', auto.params.tid.join(', ')),
    };
    const rows = h('tbody', { id: 'actions' });
    /** Names every control of a row after the row's place, so an error finds it. */
    function renumber() {
      [...rows.children].forEach((row, i) => row.querySelectorAll('[name^="actions["]').forEach((el) => {
        el.name = el.name.replace(/^actions\[\d+\]/, 'actions[' + i + ']');
      }));
    }
    function actionRow(a, saved) {
      const i = rows.children.length;
      // Left out unless set by hand: the server's default repeats resale and rebill.
      const repeat = h('input', { type: 'checkbox', name: 'actions[' + i + '].repeat', checked: a.repeat, 'aria-label': t('Every time without tid'),
        'data-touched': saved ? '1' : null, onchange: (ev) => { ev.target.dataset.touched = '1'; } });
      const row = h('tr', { class: 'action-row' },
        h('td', null, input('actions[' + i + '].type', a.type, { required: true, 'aria-label': t('Event type'), placeholder: 'sale' })),
        h('td', null, select('actions[' + i + '].stepId', stepOptions, a.stepId || '', { 'aria-label': t('Move to step'), class: 'step-select' })),
        h('td', null, select('actions[' + i + '].status', DIALOG_STATUSES, a.status || '', { 'aria-label': t('Status') })),
        h('td', null, h('textarea', { name: 'actions[' + i + '].set', rows: 2, 'aria-label': t('Set fields'), placeholder: 'depositAt = {time}' }, linesOf(a.set))),
        h('td', null, h('textarea', { name: 'actions[' + i + '].add', rows: 2, 'aria-label': t('Add to fields'), placeholder: 'deposits = 1' }, linesOf(a.add))),
        h('td', null, repeat),
        h('td', null, button(t('Remove'), () => { row.remove(); renumber(); }, 'danger')));
      rows.append(row);
    }
    auto.actions.forEach((a) => actionRow(a, true));
    const rule = auto.startPayload || { form: 'whole' };
    const form_ = select('startPayload.form', PAYLOAD_FORMS.map(([v, l]) => [v, t(l)]), rule.form);
    const pattern = input('startPayload.pattern', rule.pattern || 'CODE-{clickid}');
    const keySep = input('startPayload.keySeparator', rule.keySeparator || '__', { size: 4 });
    const pairSep = input('startPayload.pairSeparator', rule.pairSeparator || '--', { size: 4 });
    const sample = input('payload', 'CODE-3k2h5f1a2b', { maxlength: 64, 'aria-label': t('Sample payload') });
    const preview = h('div', { id: 'payload-preview', 'aria-live': 'polite' });
    function ruleNow() {
      const r = { form: form_.value };
      if (r.form === 'pattern') r.pattern = pattern.value;
      if (r.form === 'pairs') { r.keySeparator = keySep.value; r.pairSeparator = pairSep.value; }
      return r;
    }
    function showRuleControls() {
      pattern.closest('.field').hidden = form_.value !== 'pattern';
      keySep.closest('.field').hidden = pairSep.closest('.field').hidden = form_.value !== 'pairs';
    }
    let previewTimer;
    function refreshPreview() {
      clearTimeout(previewTimer);
      previewTimer = setTimeout(async () => {
        try {
          const r = await api('POST', base + '/auto-actions/start-preview',
            { payload: sample.value.trim(), startPayload: ruleNow(), clickIdField: clickField.value.trim() });
          preview.replaceChildren(...[r.mismatch ? h('p', { class: 'banner warn' }, t('Does not fit the rule: {why}. The dialog still starts, with the payload in tracker.start.', { why: r.mismatch })) : null,
            kvTable(r.tracker, 'payload-fields')].filter(Boolean));
        } catch (e) {
          if (e.status !== 401) preview.replaceChildren(h('p', { class: 'error' }, e.message));
        }
      }, 250);
    }
    [form_, pattern, keySep, pairSep, sample, clickField].forEach((el) => el.addEventListener('input', () => { showRuleControls(); refreshPreview(); }));
    const linkRows = links.items.map((l) => {
      const keitaro = l.url + '?subid={subid}&status={status}&payout={payout}&currency={currency}&tid={tid}';
      const binom = l.url + '?cnv_id={clickid}&cnv_status={status}&payout={payout}';
      return h('tr', null,
        h('td', { class: 'mono link-url' }, l.hidden ? hiddenLink(l) : l.url),
        h('td', null, h('div', { class: 'actions' }, l.hidden ? null : [copyButton(l.url),
          copyButton(keitaro, t('Copy for Keitaro')), copyButton(binom, t('Copy for Binom'))],
          button(t('Revoke'), async () => {
            if (!confirm(t('Revoke this link? Trackers calling it get 404 from now on.'))) return;
            await api('DELETE', base + '/conversion-links/' + enc(l.id));
            route();
          }, 'danger'))));
    });
    const settings = form({ id: 'auto-actions' }, [
      h('h2', null, t('What each conversion does')),
      h('p', { class: 'muted' }, t('A conversion finds the dialog whose tracker field holds its click id. Values: a literal, {param} for a parameter of the conversion (payout, currency…), {time} for when it arrived.')),
      h('div', { class: 'table-wrap' }, h('table', { class: 'actions-table' },
        h('thead', null, h('tr', null, h('th', null, t('Event type')), h('th', null, t('Move to step')), h('th', null, t('Status')),
          h('th', null, t('Set fields')), h('th', null, t('Add to fields')), h('th', null, t('Every time without tid')), h('th', null, ''))),
        rows)),
      h('div', { class: 'actions' }, button(t('Add action'), () => actionRow({ type: '', set: {}, add: {}, repeat: false }, false), null, { id: 'add-action' })),
      h('h2', null, t('Where conversions carry their values')),
      h('div', { class: 'row' }, h('div', { class: 'grow' }, field(t('Click id tracker field'), clickField)),
        h('div', { class: 'grow' }, field(t('Click id parameters'), names.clickId)),
        h('div', { class: 'grow' }, field(t('Event type parameters'), names.type)),
        h('div', { class: 'grow' }, field(t('Transaction id parameters'), names.tid, t('A repeated transaction id is applied once.')))),
      h('h2', null, t('Start payload')),
      h('p', { class: 'muted' }, t('The deep link t.me/<bot>?start=<payload> carries at most 64 of A-Z a-z 0-9 _ -; the bot engine passes it as startPayload when the chat starts.')),
      h('div', { class: 'row' }, h('div', { class: 'grow' }, field(t('Form'), form_)), h('div', { class: 'grow' }, field(t('Pattern'), pattern)),
        h('div', null, field(t('Key separator'), keySep)), h('div', null, field(t('Pair separator'), pairSep))),
      h('div', { class: 'row' }, h('div', { class: 'grow' }, field(t('Sample payload'), sample))), preview,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('Save auto actions')))], async (f) => {
      const list = (el) => el.value.split(',').map((x) => x.trim()).filter(Boolean);
      renumber();
      const actions = [...rows.children].map((row) => {
        const get = (suffix) => row.querySelector('[name$="].' + suffix + '"]');
        const a = { type: get('type').value.trim(), set: objectOf(get('set').value, get('set').name), add: objectOf(get('add').value, get('add').name) };
        if (get('repeat').dataset.touched) a.repeat = get('repeat').checked;
        if (get('stepId').value) a.stepId = get('stepId').value;
        if (get('status').value) a.status = get('status').value;
        return a;
      });
      const saved = await api('PUT', base + '/auto-actions', {
        clickIdField: clickField.value.trim(),
        params: { clickId: list(names.clickId), type: list(names.type), tid: list(names.tid) },
        actions, startPayload: ruleNow(),
      });
      toast(saved.dialogsLeftToIndex ? t('Saved. {n} older dialogs are still to be indexed by click id: save again.', { n: saved.dialogsLeftToIndex }) : t('Saved'));
      route();
    });
    showRuleControls();
    refreshPreview();
    return h('section', { 'aria-label': t('Auto actions') },
      h('p', { class: 'muted' }, t('Trackers and affiliate programs report conversions by click id to a conversion link; the dialog with that click id moves as its event type says, and the step\'s webhook reports back to the tracker. A conversion that arrives before the dialog waits for it ({d} days).', { d: Math.round(auto.waitHours / 24) })),
      auto.waiting ? h('p', { class: 'banner warn', id: 'waiting' }, t('{n} conversions wait for a dialog with their click id.', { n: auto.waiting })) : null,
      h('h2', null, t('Conversion links')),
      h('div', { class: 'actions' }, button(t('Create conversion link'), async () => {
        await api('POST', base + '/conversion-links');
        toast(t('Link created'));
        route();
      }, 'primary', { id: 'add-conversion-link' })),
      linkRows.length ? h('div', { class: 'card table-wrap' }, h('table', { id: 'conversion-links' }, h('tbody', null, linkRows)))
        : h('p', { class: 'muted' }, t('No conversion links yet.')),
      h('div', { class: 'card' }, settings));
  }

  function kvTable(obj, id) {
    const keys = Object.keys(obj || {});
    if (!keys.length) return h('p', { class: 'muted' }, t('None'));
    return h('div', { class: 'table-wrap' }, h('table', { id }, h('tbody', null, keys.map((k) =>
      h('tr', null, h('th', { class: 'mono' }, k), h('td', { class: 'mono' }, typeof obj[k] === 'string' ? obj[k] : JSON.stringify(obj[k])))))));
  }

  /** Where a step's webhook goes, for a confirmation: its method and URL up to the query. */
  function webhookTarget(s) {
    const w = s.webhook || {};
    return (w.method || (w.body && w.body !== 'none' ? 'POST' : 'GET')) + ' ' + String(w.url || '').split('?')[0];
  }

  /** A dialog's story, newest first: its start, what postbacks and the console changed, the
   * conversions, and the deliveries with their outcome. */
  function timeline(d, deliveries, stepName) {
    const rows = [];
    if (d.started && d.createdAt) rows.push({ at: d.createdAt, what: [h('strong', null, t('The chat started the bot'))] });
    for (const e of d.history || []) {
      const what = [h('strong', null, e.by === 'api' ? t('Changed in the console or API') : t('Postback'))];
      if (e.link) what.push(' ', h('span', { class: 'muted mono' }, t('link {id}', { id: e.link })));
      const parts = [];
      if (e.stepId) parts.push(t('step → {key}', { key: e.stepKey || stepName(e.stepId) }));
      if (e.status) parts.push(t('status → {s}', { s: t(e.status) }));
      if (e.changed) parts.push(e.changed.join(', ') + (e.more ? ' ' + t('and {n} more', { n: e.more }) : ''));
      if (parts.length) what.push(': ', h('span', { class: 'mono' }, parts.join('; ')));
      rows.push({ at: e.at, what });
    }
    for (const c of d.conversions || []) {
      rows.push({ at: c.at, what: [h('strong', null, t('Conversion {type}', { type: c.type })), c.tid ? ' (tid ' + c.tid + ')' : null,
        c.stepId ? ': ' + t('step → {key}', { key: stepName(c.stepId) }) : null] });
    }
    for (const x of deliveries) {
      const a = x.lastAttempt;
      rows.push({ at: x.createdAt, what: [h('strong', null, t('Webhook of step {key}', { key: stepName(x.stepId) })), ' ', badge(x.status),
        x.test ? [' ', badge('test', 'test')] : null, x.replayOf ? [' ', badge('replay', 'test')] : null,
        a && a.status != null ? ' · ' + t('receiver answered {s}', { s: a.status }) : null, ' · ',
        h('a', { href: '#/deliveries/' + enc(x.id) }, t('Open delivery'))] });
    }
    rows.sort((x, y) => String(y.at).localeCompare(String(x.at)));
    if (!rows.length) return h('p', { class: 'muted' }, t('Nothing yet.'));
    return h('ol', { class: 'timeline', id: 'timeline' }, rows.map((r) => h('li', null, h('time', { datetime: r.at }, when(r.at)), ' ', r.what)));
  }

  async function dialogPage(botId, chatId) {
    const base = '/api/bots/' + enc(botId);
    const [bot, d, steps, log] = await Promise.all([api('GET', base),
      api('GET', base + '/dialogs/' + enc(chatId)), api('GET', base + '/steps'),
      api('GET', '/api/deliveries?limit=20&botId=' + enc(botId) + '&chatId=' + enc(chatId))]);
    const stepName = (id) => { const s = steps.items.find((x) => x.id === id); return s ? (s.key || s.id) : String(id || '').slice(0, 8); };
    const hooks = steps.items.filter((s) => s.kind === 'send-webhook' && s.webhook);
    const out = h('div', { id: 'dialog-action-result', 'aria-live': 'polite' });
    /** What sending step `s`'s webhook for this chat means, for a confirmation: the request as
     * it would go (rendered against the dialog), and when it was delivered already. */
    async function sendingText(s) {
      const w = s.webhook || {};
      let request = webhookTarget(s);
      try {
        const r = await api('POST', '/api/templates/preview', { template: w.url, target: 'url', botId, chatId: d.chatId });
        request = request.split(' ')[0] + ' ' + r.output;
      } catch (_) { /* the URL up to its query, as saved */ }
      const sent = log.items.find((x) => x.stepId === s.id && x.status === 'delivered' && !x.test);
      return request + (sent ? '\n\n' + t('This chat\'s webhook of this step was delivered already, at {at}: a tracker may count it twice.', { at: when(sent.createdAt) }) : '');
    }
    const moveStep = select('stepId', [['', t('(keep the step)')]].concat(steps.items.map((s) => [s.id, (s.key || s.id) + (s.kind === 'send-webhook' ? ' ↗' : '')])), '', { class: 'step-select' });
    const moveStatus = select('status', [['', t('(keep the status)')], ['auto', t('auto')], ['manual', t('manual')], ['blocked', t('blocked')]], '');
    const moveForm = form({ id: 'move-dialog' }, [h('div', { class: 'row' },
      h('div', { class: 'grow' }, field(t('Move to step'), moveStep, t('↗ marks steps that send a webhook: moving there sends it, as a postback would.'))),
      h('div', { class: 'grow' }, field(t('Status'), moveStatus)),
      h('button', { type: 'submit', class: 'primary' }, t('Move')))], async () => {
      const body = {};
      if (moveStep.value) body.stepId = moveStep.value;
      if (moveStatus.value) body.status = moveStatus.value;
      if (!body.stepId && !body.status) throw new ApiError(422, { error: { field: 'stepId', code: 'missing_field', message: t('Choose a step or a status.') } });
      const target = steps.items.find((s) => s.id === body.stepId);
      if (target && target.id === d.stepId && (!body.status || body.status === d.status)) {
        throw new ApiError(422, { error: { field: 'stepId', code: 'same_step', message: t('The dialog is on this step already: nothing changes and nothing is sent. To send its webhook again, use Send now.') } });
      }
      if (target && target.kind === 'send-webhook' && target.webhook && target.id !== d.stepId
        && !confirm(t('Move chat {chat} to step "{key}"? Its webhook is sent with this chat\'s real data: {url}', { chat: d.chatId, key: target.key || target.id, url: await sendingText(target) }))) return;
      if (!target && body.status === 'blocked' && !confirm(t('Mark chat {chat} as blocked?', { chat: d.chatId }))) return;
      const r = await api('POST', base + '/dialogs/' + enc(d.chatId) + '/move', body);
      toast(t('Saved'));
      await route();
      const box = document.getElementById('dialog-action-result');
      if (box && r.deliveryId) box.replaceChildren(h('p', { class: 'banner' }, t('The step\'s webhook was handed over for sending; its delivery says how it went.'), ' ', h('a', { href: '#/deliveries/' + enc(r.deliveryId) }, t('Open delivery'))));
    });
    const sendStep = hooks.length ? select('stepId', hooks.map((s) => [s.id, s.key || s.id]), hooks.some((s) => s.id === d.stepId) ? d.stepId : undefined, { class: 'step-select' }) : null;
    const sendForm = hooks.length ? form({ id: 'send-step' }, [h('div', { class: 'row' },
      h('div', { class: 'grow' }, field(t('Send a step\'s webhook for this chat'), sendStep, t('The dialog stays where it is.'))),
      h('button', { type: 'submit' }, t('Send now')))], async () => {
      const target = hooks.find((s) => s.id === sendStep.value);
      if (!confirm(t('Send the webhook of step "{key}" for chat {chat} now? It goes with this chat\'s real data: {url}', { key: target.key || target.id, chat: d.chatId, url: await sendingText(target) }))) return;
      const r = await api('POST', base + '/dialogs/' + enc(d.chatId) + '/send-webhook', { stepId: target.id });
      await route();
      const box = document.getElementById('dialog-action-result');
      if (box) box.replaceChildren(deliverySummary(r));
    }) : null;
    return page(t('Dialog {id}', { id: d.chatId }),
      crumbs(['#/bots', t('Bots')], ['#/bots/' + enc(botId) + '/dialogs', bot.name], [null, String(d.chatId)]),
      h('div', { class: 'card' }, h('dl', { class: 'kv', id: 'dialog' },
        h('dt', null, t('Chat id')), h('dd', { class: 'mono' }, String(d.chatId)),
        h('dt', null, t('Name (Telegram)')), h('dd', null, d.name || '—'),
        h('dt', null, t('Username')), h('dd', null, d.username || '—'),
        h('dt', null, t('Step')), h('dd', null, d.stepKey || '—', d.stepId ? h('span', { class: 'muted mono' }, ' ' + d.stepId) : null),
        h('dt', null, t('Status')), h('dd', null, t(d.status)),
        h('dt', null, t('Started')), h('dd', null, d.started ? when(d.createdAt) : badge('pending')),
        h('dt', null, t('Tags')), h('dd', null, d.tags.length ? d.tags.join(', ') : '—'),
        h('dt', null, t('Updated')), h('dd', null, when(d.updatedAt)))),
      h('div', { class: 'card' }, moveForm, sendForm), out,
      h('h2', null, t('Story')), h('div', { class: 'card' }, timeline(d, log.items, stepName),
        h('p', { class: 'muted' }, t('The latest 12 changes, 20 deliveries and the conversions are shown.'), ' ',
          h('a', { href: '#/deliveries?botId=' + enc(botId) + '&chatId=' + enc(d.chatId) }, t('All deliveries')))),
      h('h2', null, t('Custom fields')), h('div', { class: 'card' }, kvTable(d.fields, 'dialog-fields')),
      h('h2', null, t('Tracker fields')), h('div', { class: 'card' }, kvTable(d.tracker, 'dialog-tracker')),
      d.conversions && d.conversions.length ? [h('h2', null, t('Conversions')), h('div', { class: 'card table-wrap' }, h('table', { id: 'dialog-conversions' },
        h('thead', null, h('tr', null, h('th', null, t('When')), h('th', null, t('Event type')), h('th', { class: 'opt' }, t('Transaction id')),
          h('th', null, t('Changed')), h('th', null, ''))),
        h('tbody', null, d.conversions.map((c) => h('tr', null, h('td', null, when(c.at)), h('td', null, c.type),
          h('td', { class: 'opt mono' }, c.tid || '—'),
          h('td', null, [c.stepId ? t('step') + ' ' + stepName(c.stepId) : null, (c.fields || []).join(', ')].filter(Boolean).join('; ') || '—'),
          h('td', null, c.delivery ? h('a', { href: '#/deliveries/' + enc(c.delivery) }, t('Delivery')) : null))))))] : null,
      h('div', { class: 'actions' },
        button(t('Erase dialog'), async () => {
          if (!confirm(t('Erase dialog {id} and everything stored for it?', { id: d.chatId }))) return;
          await api('DELETE', base + '/dialogs/' + enc(d.chatId));
          location.hash = '#/bots/' + enc(botId) + '/dialogs';
        }, 'danger')));
  }

  // ---- the send-webhook editor ------------------------------------------------------------
  const BUILT_INS = [['chatId', 'Telegram chat id'], ['username', 'Telegram username'], ['name', 'the person\'s name'],
    ['stepKey', 'key of the current step'], ['stepId', 'id of the current step'], ['status', 'auto, manual or blocked'],
    ['createdAt', 'when the dialog started'], ['createdAt|unix', 'the same in Unix seconds']];
  const TRACKER_COMMON = ['clickid', 'subid', 'utm_source', 'utm_medium', 'utm_campaign', 'utm_content', 'utm_term'];

  /** Byte offset in UTF-8 (as the API counts) to a string index. */
  function byteToIndex(text, bytes) {
    const enc8 = new TextEncoder();
    let count = 0;
    let i = 0;
    for (const ch of text) {
      if (count >= bytes) break;
      count += enc8.encode(ch).length;
      i += ch.length;
    }
    return i;
  }
  /** The template with each lint's span marked, as text nodes and <mark>s. */
  function marked(source, lints) {
    const spans = lints.map((l) => [byteToIndex(source, l.offset), byteToIndex(source, Math.max(l.end, l.offset + 1)), l])
      .sort((a, b) => a[0] - b[0]);
    const out = [];
    let at = 0;
    for (const [from, to, l] of spans) {
      if (from < at) continue;
      out.push(source.slice(at, from));
      out.push(h('mark', { class: 'lint', title: l.message }, source.slice(from, to) || ' '));
      at = to;
    }
    out.push(source.slice(at));
    return h('pre', { class: 'mono' }, out);
  }

  /** The webhook config's controls; `config()` reads them back as the API takes them. */
  function webhookFields(w, isNew, onTemplate, onChange) {
    const url = onTemplate(input('webhook.url', w.url, { class: 'mono', placeholder: 'https://tracker.example.com/postback?subid={tracker.clickid}&status=lead', autocomplete: 'off', spellcheck: 'false' }));
    const method = select('webhook.method', [['', t('Automatic (GET, POST with a body)')], ['GET', 'GET'], ['POST', 'POST'], ['PUT', 'PUT'], ['PATCH', 'PATCH'], ['DELETE', 'DELETE']], isNew ? '' : w.method);
    const headerRows = h('div', { id: 'headers' });
    function addHeader(name, value) {
      const row = h('div', { class: 'hdr-row' },
        input('webhook.headers', name, { 'aria-label': t('Header name'), placeholder: 'Authorization' }),
        onTemplate(input('header-value', value, { class: 'mono', 'aria-label': t('Header value') })),
        button('×', () => { row.remove(); onChange(); }, null, { 'aria-label': t('Remove header') }));
      headerRows.append(row);
    }
    for (const [n, v] of Object.entries(w.headers || {})) addHeader(n, v);
    const bodyTemplate = typeof w.body === 'object' ? w.body : null;
    const bodyKind = select('webhook.body', [['none', t('No body')], ['profile', t('Subscriber profile (BotHelp JSON)')], ['template', t('Template')]],
      bodyTemplate ? 'template' : w.body);
    const contentType = select('webhook.body.contentType', [['json', 'JSON'], ['form', t('Form')], ['text', t('Text')]], bodyTemplate ? bodyTemplate.contentType : 'json');
    const bodyText = onTemplate(h('textarea', { name: 'webhook.body.template', spellcheck: 'false' }, bodyTemplate ? bodyTemplate.template : ''));
    const bodyBox = h('div', null, field(t('Content type'), contentType), field(t('Body template'), bodyText));
    const showBody = () => { bodyBox.hidden = bodyKind.value !== 'template'; };
    bodyKind.addEventListener('change', () => { showBody(); onChange(); });
    showBody();
    const timeout = input('webhook.timeoutMs', w.timeoutMs, { type: 'number', min: 100, max: 25000, step: 100 });
    const attempts = input('webhook.retry.maxAttempts', w.retry.maxAttempts, { type: 'number', min: 1, max: 8 });
    const rate = input('webhook.rateLimit', w.rateLimit == null ? '' : w.rateLimit, { type: 'number', min: 0.01, max: 1000, step: 'any', placeholder: t('no limit') });
    const secret = input('webhook.signingSecret', '', { class: 'mono', autocomplete: 'off', placeholder: w.signed ? t('set; leave empty to keep it') : 'whsec_…' });
    const unsign = h('input', { type: 'checkbox', name: 'unsign' });
    const skip = h('input', { type: 'checkbox', name: 'webhook.skipIfMissing', checked: w.skipIfMissing });
    const box = h('fieldset', { class: 'card' }, h('legend', null, t('Webhook')),
      field(t('URL'), url, t('Variables in braces: {chatId}, {tracker.clickid}, {fields.KEY}.')),
      h('div', { class: 'row' }, h('div', { class: 'grow method' }, field(t('Method'), method)),
        h('div', { class: 'grow' }, field(t('Timeout, ms'), timeout)), h('div', { class: 'grow' }, field(t('Attempts'), attempts)),
        h('div', { class: 'grow' }, field(t('Rate limit, per second'), rate))),
      h('h3', null, t('Headers')), headerRows,
      button(t('+ Header'), () => addHeader('', ''), null, { id: 'add-header' }),
      h('h3', null, t('Body')), field(t('Body'), bodyKind), bodyBox,
      field(t('Signing secret'), secret, t('Standard Webhooks signatures; never shown again once saved.')),
      h('div', { class: 'actions' }, button(t('Generate a secret'), () => {
        const bytes = crypto.getRandomValues(new Uint8Array(32));
        secret.value = 'whsec_' + btoa(String.fromCharCode(...bytes));
      })),
      w.signed ? h('label', { class: 'check' }, unsign, t('Stop signing')) : null,
      h('label', { class: 'check' }, skip, t('Skip when a variable has no value (log as skipped)')));
    function config() {
      const c = { url: url.value };
      if (method.value) c.method = method.value;
      const headers = {};
      headerRows.querySelectorAll('.hdr-row').forEach((row) => {
        const [n, v] = row.querySelectorAll('input');
        if (n.value.trim()) headers[n.value.trim()] = v.value;
      });
      if (Object.keys(headers).length) c.headers = headers;
      c.body = bodyKind.value === 'template' ? { template: bodyText.value, contentType: contentType.value } : bodyKind.value;
      if (timeout.value) c.timeoutMs = Number(timeout.value);
      if (attempts.value) c.retry = { maxAttempts: Number(attempts.value) };
      if (rate.value.trim()) c.rateLimit = Number(rate.value);
      // A view sent back with "signed": true keeps the stored secret.
      if (secret.value.trim()) c.signingSecret = secret.value.trim();
      else if (w.signed && !unsign.checked) c.signed = true;
      c.skipIfMissing = skip.checked;
      return c;
    }
    return { box, config, url, bodyKind, bodyText, contentType };
  }

  /** The names a template may use; a click inserts `{name}` with `insert`. */
  function variablesPanel(fields, insert) {
    const trackerKeys = new Set(TRACKER_COMMON);
    const varButton = (name, desc) => h('button', { type: 'button', onclick: () => insert(name), 'data-var': name },
      '{' + name + '}', desc ? h('span', { class: 'desc' }, ' ' + desc) : null);
    const trackerList = h('div');
    const renderTracker = () => trackerList.replaceChildren(...[...trackerKeys].map((k) => varButton('tracker.' + k)));
    renderTracker();
    const panel = h('aside', { class: 'card vars', 'aria-label': t('Variables') }, h('h2', null, t('Variables')),
      h('p', { class: 'muted' }, t('Click to insert at the cursor.')),
      h('h3', null, t('Built-in')), BUILT_INS.map(([n, d]) => varButton(n, t(d))),
      h('h3', null, t('Custom fields')), fields.length ? fields.map((f) => varButton('fields.' + f.key, t(f.type))) : h('p', { class: 'muted' }, t('None defined')),
      h('h3', null, t('Tracker fields')), trackerList);
    /** Adds the tracker keys a real dialog has. */
    panel.addTracker = (keys) => { keys.forEach((k) => trackerKeys.add(k)); renderTracker(); };
    return panel;
  }

  /** The live preview of the URL and body template against a dialog or a sample. */
  function previewPanel(botId, webhook, isWebhook, vars) {
    const chat = input('chatId', '', { inputmode: 'numeric', placeholder: t('sample dialog'), autocomplete: 'off' });
    const out = h('div', { id: 'preview', 'aria-live': 'polite' });
    const f = form({ id: 'preview-form' }, [field(t('Preview against chat id (empty: a sample dialog)'), chat), out], async () => run());
    async function renderOne(label, template, target) {
      const req = { template, target, botId };
      if (chat.value.trim()) req.chatId = Number(chat.value.trim());
      try {
        const r = await api('POST', '/api/templates/preview', req);
        const parts = [h('h3', null, label), h('pre', { class: 'mono preview-output' }, r.output)];
        if (r.missing.length) parts.push(h('p', { class: 'banner warn' }, t('No value: {names}', { names: r.missing.join(', ') })));
        if (r.lints.length) {
          parts.push(marked(template, r.lints));
          parts.push(h('ul', { class: 'lints' }, r.lints.map((l) => h('li', null, h('span', { class: 'mono' }, l.kind), ' ',
            t('at character {n}', { n: byteToIndex(template, l.offset) }), ': ', l.message))));
        }
        return parts;
      } catch (e) {
        if (e.field === 'chatId') showError(f, e);
        return [h('h3', null, label), h('div', { class: 'banner error' }, e.message, e.position != null ? ' ' + t('(at character {n})', { n: e.position }) : '')];
      }
    }
    async function run() {
      if (!isWebhook()) return out.replaceChildren();
      const parts = [];
      if (webhook.url.value) parts.push(...await renderOne(t('URL'), webhook.url.value, 'url'));
      const kind = webhook.bodyKind.value;
      if (kind === 'template' && webhook.bodyText.value) parts.push(...await renderOne(t('Body'), webhook.bodyText.value, webhook.contentType.value));
      if (kind === 'profile') parts.push(h('p', { class: 'muted' }, t('The body is the subscriber profile as BotHelp sends it.')));
      out.replaceChildren(...parts);
    }
    let timer;
    const schedule = () => { clearTimeout(timer); timer = setTimeout(run, 350); };
    for (const el of [webhook.url, webhook.bodyText, webhook.contentType, chat]) el.addEventListener('input', schedule);
    chat.addEventListener('change', async () => {
      const id = chat.value.trim();
      if (!/^-?\d+$/.test(id)) return;
      try {
        const d = await api('GET', '/api/bots/' + enc(botId) + '/dialogs/' + enc(id));
        vars.addTracker(Object.keys(d.tracker || {}));
      } catch (_) { /* the preview says what is wrong */ }
    });
    setTimeout(run, 0);
    return { box: h('section', { class: 'card' }, h('h2', null, t('Preview')), f), schedule };
  }

  /** One test attempt of a saved step, showing the receiver's answer. */
  function testSendPanel(botId, stepId) {
    const chat = input('chatId', '', { inputmode: 'numeric', placeholder: t('sample dialog'), autocomplete: 'off' });
    const out = h('div', { id: 'test-result', 'aria-live': 'polite' });
    return h('section', { class: 'card' }, h('h2', null, t('Test-send')),
      form({ id: 'test-send' }, [h('div', { class: 'row' }, h('div', { class: 'grow' }, field(t('Chat id (empty: a sample dialog)'), chat)),
        h('button', { type: 'submit' }, t('Send a test')))], async () => {
        const id = chat.value.trim();
        if (id && !confirm(t('Send the webhook with chat {id}\'s real data? The receiver cannot tell it from a real one: a tracker may count a conversion.', { id }))) return;
        const d = await api('POST', '/api/bots/' + enc(botId) + '/steps/' + enc(stepId) + '/test-send', id ? { chatId: Number(id) } : {});
        out.replaceChildren(deliverySummary(d));
      }), out);
  }

  const NEW_WEBHOOK = { url: '', method: 'GET', headers: {}, body: 'none', timeoutMs: 10000, retry: { maxAttempts: 8 }, signed: false, skipIfMissing: false };

  async function stepEditor(botId, stepId) {
    const isNew = stepId === 'new';
    const stepPath = '/api/bots/' + enc(botId) + '/steps/' + enc(stepId);
    const [bot, fields, step] = await Promise.all([api('GET', '/api/bots/' + enc(botId)),
      api('GET', '/api/bots/' + enc(botId) + '/fields'),
      isNew ? Promise.resolve({ key: '', kind: 'send-webhook', webhook: null }) : api('GET', stepPath)]);
    let lastTemplate = null;
    let preview = null;
    const remember = (el) => { el.addEventListener('focus', () => { lastTemplate = el; }); return el; };
    const webhook = webhookFields(step.webhook || NEW_WEBHOOK, isNew || !step.webhook, remember, () => preview.schedule());
    // Variables insert at the cursor of the template field used last.
    const vars = variablesPanel(fields.items, (name) => {
      const target = lastTemplate || webhook.url;
      const text = '{' + name + '}';
      const start = target.selectionStart == null ? target.value.length : target.selectionStart;
      const end = target.selectionEnd == null ? start : target.selectionEnd;
      target.value = target.value.slice(0, start) + text + target.value.slice(end);
      target.focus();
      target.setSelectionRange(start + text.length, start + text.length);
      preview.schedule();
    });
    const key = input('key', step.key, { autocomplete: 'off', required: true });
    const kinds = ['send-webhook', 'message'].map((k) => [k, kindLabel(k)]);
    if (!kinds.some(([k]) => k === step.kind)) kinds.push([step.kind, step.kind]);
    const kind = select('kind', kinds, step.kind);
    const showWebhook = () => { webhook.box.hidden = kind.value !== 'send-webhook'; };
    kind.addEventListener('change', showWebhook);
    showWebhook();
    preview = previewPanel(botId, webhook, () => kind.value === 'send-webhook', vars);
    // A new step may keep the id it had in Chatterfy, so trackers' stepId= stays valid.
    const newId = isNew ? input('stepId', '', { class: 'mono', autocomplete: 'off', placeholder: 'c0a8e7e2-5d0f-4c11-9a59-4c1f3b2d1a00' }) : null;
    const idRow = isNew
      ? h('div', { class: 'grow' }, field(t('Step id (optional: the id it had in Chatterfy)'), newId))
      : h('div', { class: 'grow' }, h('p', null, h('strong', null, t('Step id')), ' ', h('span', { class: 'mono', id: 'step-id' }, stepId), ' ', copyButton(stepId)));
    const editor = form({ id: 'step-form' }, [h('div', { class: 'card' }, h('div', { class: 'row' },
      h('div', { class: 'grow' }, field(t('Step key'), key)), h('div', { class: 'grow' }, field(t('Kind'), kind))), h('div', { class: 'row' }, idRow)), webhook.box,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('Save step')),
        isNew ? null : button(t('Delete step'), async () => {
          if (!confirm(t('Delete the step "{key}"? Postbacks that name it (stepId={id}) are refused from then on.', { key: step.key || stepId, id: stepId }))) return;
          await api('DELETE', stepPath);
          location.hash = '#/bots/' + enc(botId) + '/steps';
        }, 'danger'),
        isNew ? null : h('a', { href: '#/deliveries?botId=' + enc(botId) + '&stepId=' + enc(stepId) }, t('Deliveries')))], async () => {
      const body = { key: key.value, kind: kind.value };
      if (kind.value === 'send-webhook') body.webhook = webhook.config();
      const chosen = newId ? newId.value.trim().toLowerCase() : '';
      if (chosen && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(chosen)) {
        throw new ApiError(422, { error: { field: 'stepId', code: 'bad_step_id', message: t('A step id is a UUID, as Chatterfy shows it: 8-4-4-4-12 hex digits.') } });
      }
      if (chosen) {
        // PUT with an id replaces what has it: a new step must not take a step's id quietly.
        const taken = await api('GET', '/api/bots/' + enc(botId) + '/steps/' + enc(chosen)).then(() => true, (e) => {
          if (e.status === 404) return false;
          throw e;
        });
        if (taken) throw new ApiError(409, { error: { field: 'stepId', code: 'step_id_in_use', message: t('This bot has a step with this id already: open it to change it.') } });
      }
      const saved = !isNew ? await api('PUT', stepPath, body)
        : chosen ? await api('PUT', '/api/bots/' + enc(botId) + '/steps/' + enc(chosen), body)
          : await api('POST', '/api/bots/' + enc(botId) + '/steps', body);
      toast(t('Saved'));
      if (isNew) location.hash = '#/bots/' + enc(botId) + '/steps/' + enc(saved.id);
      else route();
    });
    return page(isNew ? t('New step') : t('Step {key}', { key: step.key || stepId }),
      crumbs(['#/bots', t('Bots')], ['#/bots/' + enc(botId) + '/steps', bot.name], [null, isNew ? t('New step') : step.key]),
      step.webhookGone ? h('p', { class: 'banner warn' }, t('The receiver answered 410 Gone: deliveries are skipped until the step is saved again.')) : null,
      isNew ? null : statePanel(step.deliveryState, stepPath, { botId, stepId }),
      h('div', { class: 'editor' }, h('div', null, editor, preview.box, isNew ? null : testSendPanel(botId, stepId),
        isNew ? null : await postbackBuilder(botId, stepId)), vars));
  }

  /** A value in a tracker's URL: encoded, but the tracker's {macros} left for it to fill. */
  function trackerValue(v) {
    return encodeURIComponent(v).replace(/%7B/gi, '{').replace(/%7D/gi, '}');
  }
  /**
   * The postback URL a tracker calls to move a dialog into this step: a link, the macro that
   * holds the chat id, a status and fields (values may be the tracker's macros, {payout}).
   */
  async function postbackBuilder(botId, stepId) {
    const all = (await api('GET', '/api/bots/' + enc(botId) + '/webhooks')).items;
    const links = all.filter((l) => !l.hidden && l.url);
    // A viewer's key sees no link URL: nothing to build.
    if (all.some((l) => l.hidden)) return null;
    if (!links.length) {
      return h('section', { class: 'card', id: 'postback-builder' }, h('h2', null, t('Postback URL for a tracker')),
        h('p', { class: 'muted' }, t('Add a postback link to the bot first.')));
    }
    const link = select('link', links.map((l) => [l.url, l.url]), links[0].url, { class: 'mono' });
    const chat = input('chatMacro', '{sub_id_1}', { class: 'mono', autocomplete: 'off' });
    const status = select('status', [['', t('unchanged')], ['auto', 'auto'], ['manual', 'manual'], ['blocked', 'blocked']], '');
    const extra = h('textarea', { name: 'fields', rows: 3, class: 'mono', placeholder: 'userBalance = {payout}' });
    const out = h('code', { class: 'mono', id: 'postback-url' });
    const copyBox = h('span');
    const build = () => {
      const parts = ['chatId=' + trackerValue(chat.value.trim() || '{sub_id_1}'), 'stepId=' + enc(stepId)];
      if (status.value) parts.push('status=' + status.value);
      for (const line of extra.value.split('\n')) {
        const at = line.indexOf('=');
        if (at < 1) continue;
        const name = line.slice(0, at).trim();
        if (name) parts.push(enc(name) + '=' + trackerValue(line.slice(at + 1).trim()));
      }
      const url = link.value + '?' + parts.join('&');
      out.textContent = url;
      copyBox.replaceChildren(copyButton(url));
    };
    [link, chat, status, extra].forEach((el) => el.addEventListener('input', build));
    build();
    return h('section', { class: 'card', id: 'postback-builder' }, h('h2', null, t('Postback URL for a tracker')),
      h('p', { class: 'muted' }, t('Paste it into the tracker\'s postback: it moves the dialog into this step. Write the tracker\'s macros as it writes them ({sub_id_1}, {payout}); they stay unencoded for it to fill.')),
      form({ id: 'postback-form' }, [field(t('Postback link'), link),
        h('div', { class: 'row' }, h('div', { class: 'grow' }, field(t('Chat id comes from (the tracker\'s macro)'), chat)),
          h('div', null, field(t('Status'), status))),
        field(t('Fields (name = value, one a line)'), extra)], async () => build()),
      h('p', null, out, ' ', copyBox));
  }


  // ---- where a step or hook stands as a sender, and what needs attention -----------------
  /** A badge for a step or hook that is failing, paused or disabled; nothing when active. */
  function stateBadge(state) {
    if (!state || state.status === 'active') return null;
    return [' ', badge(state.status, 'state-' + state.status)];
  }
  /** Asks before pausing: what a pause does to the deliveries that come meanwhile. */
  function pauseAsked() {
    return confirm(t('Pause sending? New deliveries are held (logged as skipped) until you resume; trackers are answered as usual. "Resume and recover" sends the held ones then.'));
  }
  /** Asks before sending failed or held deliveries again. */
  function recoverAsked(since) {
    return confirm(t('Send again every failed or held delivery since {at}? Each receiver gets them once more.', { at: when(since) }));
  }
  /** Says why a step or hook is held or failing, with Pause / Resume and Recover. */
  function statePanel(state, path, owner) {
    state = state || { status: 'active' };
    const out = h('div', { class: 'actions' });
    const act = (label, verb) => button(label, async () => {
      if (verb === 'pause' && !pauseAsked()) return;
      try {
        await api('POST', path + '/' + verb);
        toast(verb === 'pause' ? t('Paused') : t('Resumed'));
        route();
      } catch (e) { toast(plainError(e)); }
    }, verb === 'pause' ? null : 'primary', { id: verb + '-sending' });
    const held = state.status === 'paused' || state.status === 'disabled';
    out.append(held ? act(t('Resume sending'), 'resume') : act(t('Pause sending'), 'pause'));
    if (held) {
      // Resuming forgets when the trouble began: the recover starts from there first.
      out.append(button(t('Resume and recover'), async () => {
        if (!recoverAsked(recoverSince(state))) return;
        try {
          const since = recoverSince(state);
          await api('POST', path + '/resume');
          recoveredToast(await recoverAll(owner, since));
          route();
        } catch (e) { toast(plainError(e)); }
      }, 'primary', { 'data-admin': true }));
    }
    let note = null;
    if (state.status === 'disabled') {
      note = t('Disabled at {at}: {why}. New deliveries are logged as skipped. Fix the receiver, resume, then recover what failed.', { at: when(state.disabledAt), why: state.disabledReason || '' });
    } else if (state.status === 'paused') {
      note = t('Paused at {at}: new deliveries are logged as skipped until you resume.', { at: when(state.pausedAt) });
    } else if (state.status === 'failing') {
      note = t('Failing since {at}: {n} failed attempts, the last: {error}.', { at: when(state.failingSince), n: state.failures, error: state.lastError || '' });
    }
    out.append(recoverButton(owner, state));
    return h('section', { class: 'card', id: 'delivery-state' }, h('h2', null, t('Sending')),
      note ? h('p', { class: 'banner ' + (held ? 'warn' : 'error') }, note) : h('p', { class: 'muted' }, t('Active: deliveries go out as they come.')), out);
  }
  /** Sends again every failed (or held) delivery of a step or hook since `since`, call after call. */
  async function recoverAll(owner, since) {
    let cursor = null;
    let total = 0;
    let held = 0;
    for (let i = 0; i < 100; i++) {
      const body = Object.assign({ since, limit: 200 }, owner);
      if (cursor) body.cursor = cursor;
      const r = await api('POST', '/api/deliveries/recover', body);
      total += r.count;
      held += r.held;
      cursor = r.nextCursor;
      if (!cursor) break;
    }
    return { total, held, more: !!cursor };
  }
  function recoveredToast(r) {
    let text = r.held ? t('{n} queued; {m} wait until you resume', { n: r.total, m: r.held }) : t('Queued to be sent again: {n}', { n: r.total });
    if (r.more) text += ' · ' + t('More remain: press again.');
    toast(text);
  }
  /** Where a recover starts: the earliest moment the state knows of, else the last day. */
  function recoverSince(state, oldest) {
    const times = [oldest, state && state.failingSince, state && state.pausedAt, state && state.disabledAt]
      .filter(Boolean).sort();
    return times[0] || new Date(Date.now() - 86400000).toISOString();
  }
  function recoverButton(owner, state, oldest) {
    const since = recoverSince(state, oldest);
    return button(t('Recover failed deliveries'), async () => {
      if (!recoverAsked(since)) return;
      try {
        recoveredToast(await recoverAll(owner, since));
        route();
      } catch (e) { toast(plainError(e)); }
    }, null, { class: 'recover', 'data-admin': true });
  }
  /** 24 hourly bars, delivered (green) over failed (red): a day at a glance. */
  function dayChart(hours, label) {
    const ns = 'http://www.w3.org/2000/svg';
    const el = (tag, attrs) => {
      const e = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
      return e;
    };
    const top = Math.max(1, ...hours.map((x) => x.delivered + x.failed + x.held));
    const svg = el('svg', { viewBox: '0 0 96 24', width: 96, height: 24, role: 'img', 'aria-label': label, class: 'day-chart' });
    hours.forEach((x, i) => {
      const scale = (n) => Math.round((n / top) * 22);
      const ok = scale(x.delivered);
      const bad = scale(x.failed + x.held);
      if (ok) svg.append(el('rect', { x: i * 4, y: 24 - ok, width: 3, height: ok, fill: '#059669' }));
      if (bad) svg.append(el('rect', { x: i * 4, y: 24 - ok - bad, width: 3, height: bad, fill: '#dc2626' }));
      if (!ok && !bad) svg.append(el('rect', { x: i * 4, y: 23, width: 3, height: 1, fill: '#d1d5db' }));
    });
    return svg;
  }
  function ownerOf(item) {
    return item.kind === 'step' ? { botId: item.botId, stepId: item.stepId } : { serviceId: item.serviceId, hookId: item.hookId };
  }
  function ownerHref(item) {
    return item.kind === 'step' ? '#/bots/' + enc(item.botId) + '/steps/' + enc(item.stepId)
      : '#/calls/' + enc(item.serviceId) + '/hooks/' + enc(item.hookId);
  }
  function ownerPath(item) {
    return item.kind === 'step' ? '/api/bots/' + enc(item.botId) + '/steps/' + enc(item.stepId)
      : '/api/calls/services/' + enc(item.serviceId) + '/hooks/' + enc(item.hookId);
  }
  async function attentionPage() {
    const [att, eps] = await Promise.all([api('GET', '/api/attention'), api('GET', '/api/alerts/endpoints')]);
    const rows = att.items.map((it) => {
      const st = it.deliveryState;
      const day = it.last24h;
      const rate = day.successRate == null ? '—' : Math.round(day.successRate * 100) + '%';
      const held = st.status === 'paused' || st.status === 'disabled';
      const failed = '#/deliveries?' + new URLSearchParams(Object.assign({ status: 'failed' }, ownerOf(it)));
      return h('tr', null,
        h('td', null, h('a', { href: ownerHref(it) }, it.name), ' ', h('span', { class: 'muted' }, it.kind === 'step' ? t('step') : t('hook'))),
        h('td', null, badge(st.status, 'state-' + st.status)),
        h('td', { class: 'opt' }, st.lastError ? h('span', { class: 'mono' }, st.lastError) : '—',
          st.failingSince ? h('div', { class: 'muted' }, t('since {at}', { at: when(st.failingSince) })) : null),
        h('td', null, dayChart(day.hours, t('{d} delivered, {f} failed in 24 h', { d: day.delivered, f: day.failed })), ' ', rate),
        h('td', null, day.unrecovered ? h('a', { href: failed }, String(day.unrecovered)) : '0'),
        h('td', null, h('div', { class: 'actions' },
          button(held ? t('Resume sending') : t('Pause sending'), async () => {
            if (!held && !pauseAsked()) return;
            try {
              await api('POST', ownerPath(it) + (held ? '/resume' : '/pause'));
              toast(held ? t('Resumed') : t('Paused'));
              route();
            } catch (e) { toast(plainError(e)); }
          }, held ? 'primary' : null),
          held && day.unrecovered ? button(t('Resume and recover'), async () => {
            if (!recoverAsked(recoverSince(st, day.oldestUnrecoveredAt))) return;
            try {
              await api('POST', ownerPath(it) + '/resume');
              recoveredToast(await recoverAll(ownerOf(it), recoverSince(st, day.oldestUnrecoveredAt)));
              route();
            } catch (e) { toast(plainError(e)); }
          }, 'primary', { 'data-admin': true }) : null,
          !held && day.unrecovered ? recoverButton(ownerOf(it), st, day.oldestUnrecoveredAt) : null)));
    });
    return page(t('Needs attention'),
      h('p', { class: 'muted' }, t('Steps and hooks whose deliveries fail, or that are paused or disabled. One that keeps failing for days is disabled, and the alert endpoints below are told.')),
      rows.length ? h('div', { class: 'card table-wrap' }, h('table', { id: 'attention' },
        h('thead', null, h('tr', null, h('th', null, t('Step or hook')), h('th', null, t('State')), h('th', { class: 'opt' }, t('Last error')),
          h('th', null, t('Last 24 hours')), h('th', null, t('Failed, not recovered')), h('th', null, ''))),
        h('tbody', null, rows))) : h('p', { class: 'banner ok', id: 'all-well' }, t('Nothing needs attention: every step and hook delivers.')),
      att.partial ? h('p', { class: 'muted' }, t('Busy logs: the counts are of the newest 1000 deliveries.')) : null,
      alertEndpoints(eps));
  }
  /** The operator's alert endpoints: add (the secret shown once), test-send, delete. */
  function alertEndpoints(eps) {
    const url = input('url', '', { type: 'url', required: true, autocomplete: 'off', class: 'mono', placeholder: 'https://ops.example.com/funnelhooks' });
    const description = input('description', '', { maxlength: 200 });
    const once = h('div', { id: 'alert-secret' });
    const out = h('div', { 'aria-live': 'polite' });
    const list = eps.items.map((e) => h('tr', null,
      h('td', { class: 'mono' }, e.url), h('td', null, e.description || ''),
      h('td', { class: 'opt' }, e.events.length ? e.events.join(', ') : t('all events')),
      h('td', null, h('div', { class: 'actions' },
        button(t('Test-send'), async () => {
          try {
            const d = await api('POST', '/api/alerts/endpoints/' + enc(e.id) + '/test-send');
            out.replaceChildren(deliverySummary(d));
          } catch (err) { out.replaceChildren(errorBanner(err)); }
        }),
        button(t('Delete'), async () => {
          if (!confirm(t('Delete the alert endpoint {url}?', { url: e.url }))) return;
          await api('DELETE', '/api/alerts/endpoints/' + enc(e.id));
          route();
        }, 'danger')))));
    const section = h('section', { class: 'card', id: 'alert-endpoints' }, h('h2', null, t('Alert endpoints')),
      h('p', { class: 'muted' }, t('Operational events (delivery.exhausted, target.gone, target.disabled, target.reenabled) go here as signed JSON (Standard Webhooks).')),
      list.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'alert-list' }, h('tbody', null, list))) : null,
      form({ id: 'alert-form' }, [h('div', { class: 'row' },
        h('div', { class: 'grow' }, field(t('Alert URL'), url)), h('div', { class: 'grow' }, field(t('Description'), description)),
        h('button', { type: 'submit', class: 'primary' }, t('Add alert endpoint')))], async () => {
        const e = await api('POST', '/api/alerts/endpoints', { url: url.value.trim(), description: description.value });
        once.replaceChildren(h('div', { class: 'banner warn' }, t('Its signing secret, shown this once: verify the alerts with it.'), ' ',
          h('code', { class: 'mono', id: 'alert-secret-value' }, e.signingSecret), ' ', copyButton(e.signingSecret)));
        url.value = '';
        description.value = '';
        const fresh = await api('GET', '/api/alerts/endpoints');
        const replaced = alertEndpoints(fresh);
        replaced.children[0].after(once);
        section.replaceWith(replaced);
      }), out);
    return section;
  }

  // ---- deliveries -------------------------------------------------------------------------
  const STATUSES = ['pending', 'delivered', 'retrying', 'failed', 'skipped'];
  function lastAttempt(d) { return d.attempts && d.attempts.length ? d.attempts[d.attempts.length - 1] : null; }
  function deliverySummary(d) {
    const a = lastAttempt(d);
    return h('div', { class: 'card delivery-summary' },
      h('p', null, badge(d.status), ' ', h('a', { href: '#/deliveries/' + enc(d.id) }, t('Open delivery')),
        a ? [' · ', t('receiver answered {s}', { s: a.status == null ? '—' : a.status })] : null),
      h('pre', { class: 'mono' }, d.request.method + ' ' + d.request.url),
      a && a.body ? h('pre', { class: 'mono' }, a.body) : null,
      d.error || (a && a.error) ? h('p', { class: 'error' }, d.error || a.error) : null);
  }

  /** A select of named things (bots, steps, services, hooks) whose value is their id. An id
   * not among them (from a link) stays choosable. */
  function namedSelect(name, label, items, value) {
    const options = [['', t('any')]].concat(items.map((x) => [x.id, x.name]));
    if (value && !items.some((x) => x.id === value)) options.push([value, value]);
    return select(name, options, value || '', { 'aria-label': label });
  }

  async function deliveriesPage(q) {
    const filters = ['botId', 'stepId', 'chatId', 'serviceId', 'hookId', 'callId'];
    const query = new URLSearchParams();
    for (const k of [...filters, 'status', 'test', 'cursor']) if (q.get(k)) query.set(k, q.get(k));
    query.set('limit', '50');
    const quiet = (p) => p.catch(() => ({ items: [] }));
    const [list, bots, services] = await Promise.all([api('GET', '/api/deliveries?' + query),
      quiet(api('GET', '/api/bots?limit=200')), quiet(api('GET', '/api/calls/services?limit=200'))]);
    // The steps of the bots on this page (a few at most), to name each delivery's step.
    const pageBots = [...new Set([q.get('botId'), ...list.items.map((d) => d.botId)].filter(Boolean))].slice(0, 10);
    const botSteps = await Promise.all(pageBots.map((b) => quiet(api('GET', '/api/bots/' + enc(b) + '/steps'))));
    const [steps, hooks] = await Promise.all([
      q.get('botId') ? botSteps[0] : { items: [] },
      q.get('serviceId') ? quiet(api('GET', '/api/calls/services/' + enc(q.get('serviceId'))).then((s) => ({ items: s.hooks || [] }))) : { items: [] }]);
    const botNames = Object.fromEntries(bots.items.map((b) => [b.id, b.name]));
    const stepNames = Object.fromEntries(botSteps.flatMap((b) => b.items).map((s) => [s.id, s.key || s.id]));
    const serviceNames = Object.fromEntries(services.items.map((s) => [s.id, s.name]));
    const hookName = (k) => k.name || hookTarget(k);
    const hookNames = Object.fromEntries(hooks.items.map((k) => [k.id, hookName(k)]));
    const controls = {
      botId: namedSelect('botId', t('Bot'), bots.items, q.get('botId')),
      stepId: namedSelect('stepId', t('Step'), steps.items.map((s) => ({ id: s.id, name: s.key || s.id })), q.get('stepId')),
      chatId: input('chatId', q.get('chatId') || '', { autocomplete: 'off', inputmode: 'numeric', class: 'mono' }),
      serviceId: namedSelect('serviceId', t('Call-tracking service'), services.items, q.get('serviceId')),
      hookId: namedSelect('hookId', t('Call hook'), hooks.items.map((k) => ({ id: k.id, name: hookName(k) })), q.get('hookId')),
      callId: input('callId', q.get('callId') || '', { autocomplete: 'off', class: 'mono' }),
    };
    const labels = { botId: t('Bot'), stepId: t('Step'), chatId: t('Chat id'), serviceId: t('Call-tracking service'), hookId: t('Call hook'), callId: t('Call id') };
    // Steps belong to a bot and hooks to a service: choosing one of those starts afresh.
    controls.stepId.disabled = !q.get('botId');
    controls.hookId.disabled = !q.get('serviceId');
    const status = select('status', [['', t('any')], ...STATUSES.map((s) => [s, t(s)])], q.get('status') || '');
    const test = select('test', [['', t('any')], ['true', t('tests only')], ['false', t('no tests')]], q.get('test') || '');
    const submitWith = () => {
      const next = new URLSearchParams();
      for (const k of filters) if (!controls[k].disabled && controls[k].value.trim()) next.set(k, controls[k].value.trim());
      if (status.value) next.set('status', status.value);
      if (test.value) next.set('test', test.value);
      location.hash = '#/deliveries' + (next.toString() ? '?' + next : '');
    };
    controls.botId.addEventListener('change', () => { controls.stepId.value = ''; controls.stepId.disabled = true; submitWith(); });
    controls.stepId.addEventListener('change', submitWith);
    controls.hookId.addEventListener('change', submitWith);
    controls.serviceId.addEventListener('change', () => { controls.hookId.value = ''; controls.hookId.disabled = true; submitWith(); });
    const filterForm = form({ id: 'delivery-filters' }, [h('div', { class: 'row' },
      filters.map((k) => h('div', { class: 'grow' }, field(labels[k], controls[k]))),
      h('div', { class: 'grow' }, field(t('Status'), status)), h('div', { class: 'grow' }, field(t('Test'), test)),
      h('button', { type: 'submit', class: 'primary' }, t('Filter')))], async () => submitWith());
    const set = [...filters, 'status', 'test'].filter((k) => q.get(k)).length;
    // On a phone the filters fold away: the list comes first; the summary says how many are set.
    const box = h('details', { class: 'card filters', open: !matchMedia('(max-width: 760px)').matches },
      h('summary', null, set ? t('Filters ({n} set)', { n: set }) : t('Filters')), filterForm);
    // A bot's deliveries or a service's: the other's filters are beside the point.
    const hide = (keys, when) => keys.forEach((k) => { controls[k].closest('.grow').hidden = when; });
    hide(['serviceId', 'hookId', 'callId'], !!q.get('botId'));
    hide(['botId', 'stepId', 'chatId'], !!q.get('serviceId'));
    const next = new URLSearchParams(q);
    if (list.nextCursor) next.set('cursor', list.nextCursor);
    const source = (d) => {
      if (d.stepId) return [botNames[d.botId] || t('bot'), ' / ', stepNames[d.stepId] || t('step'), d.chatId != null ? ' · ' + t('chat {id}', { id: d.chatId }) : ''];
      if (d.hookId) return [serviceNames[d.serviceId] || t('service'), ' / ', hookNames[d.hookId] || t('call hook'), d.callId != null ? ' · ' + t('call {id}', { id: d.callId }) : ''];
      return d.chatId != null ? t('chat {id}', { id: d.chatId }) : d.callId != null ? t('call {id}', { id: d.callId }) : '';
    };
    return page(t('Deliveries'), box,
      list.items.length ? h('div', { class: 'card table-wrap' }, h('table', { id: 'deliveries' },
        h('thead', null, h('tr', null, h('th', null, t('Status')), h('th', null, t('Request')), h('th', { class: 'opt' }, t('Source')),
          h('th', { class: 'opt' }, t('Last answer')), h('th', { class: 'opt' }, t('Attempts')), h('th', { class: 'opt' }, t('Created')))),
        h('tbody', null, list.items.map((d) => h('tr', null,
          h('td', null, badge(d.status), d.test ? [' ', badge('test', 'test')] : null, d.replayOf ? [' ', badge('replay', 'test')] : null),
          h('td', { class: 'mono' }, h('a', { href: '#/deliveries/' + enc(d.id) }, d.request.method + ' ' + d.request.url)),
          h('td', { class: 'opt' }, source(d)),
          h('td', { class: 'opt mono' }, d.lastAttempt ? (d.lastAttempt.status == null ? (d.lastAttempt.error ? t('no answer') : '—') : String(d.lastAttempt.status)) : '—'),
          h('td', { class: 'opt' }, String(d.attemptCount)), h('td', { class: 'opt' }, when(d.createdAt))))))) : h('p', { class: 'muted' }, t('No deliveries match.')),
      list.nextCursor ? h('a', { href: '#/deliveries?' + next }, t('Next page')) : null);
  }

  function headerList(headers) {
    if (!headers || !headers.length) return null;
    return h('pre', { class: 'mono' }, headers.map(([n, v]) => n + ': ' + v).join('\n'));
  }

  async function deliveryPage(id) {
    const d = await api('GET', '/api/deliveries/' + enc(id));
    // A step delivery a conversion caused: its dialog remembers which one.
    let cause = null;
    if (d.stepId && d.botId && d.chatId != null) {
      const dialog = await api('GET', '/api/bots/' + enc(d.botId) + '/dialogs/' + enc(d.chatId)).catch(() => null);
      cause = dialog && (dialog.conversions || []).find((c) => c.delivery === d.id);
    }
    // Where it came from, by name: the bot and its step, or the service and its hook.
    const named = async (path, pick) => { try { return pick(await api('GET', path)); } catch (_) { return null; } };
    const owner = d.stepId
      ? [await named('/api/bots/' + enc(d.botId), (b) => b.name) || t('bot'), ' / ',
        h('a', { href: '#/bots/' + enc(d.botId) + '/steps/' + enc(d.stepId) },
          t('step {key}', { key: await named('/api/bots/' + enc(d.botId) + '/steps/' + enc(d.stepId), (s) => s.key || s.id) || d.stepId }))]
      : d.hookId
        ? [await named('/api/calls/services/' + enc(d.serviceId), (s) => s.name) || t('service'), ' / ',
          h('a', { href: '#/calls/' + enc(d.serviceId) + '/hooks/' + enc(d.hookId) }, t('call hook'))]
        : '—';
    return page(t('Delivery'),
      crumbs(['#/deliveries', t('Deliveries')], [null, d.id]),
      h('div', { class: 'card' }, h('dl', { class: 'kv', id: 'delivery' },
        h('dt', null, t('Status')), h('dd', null, badge(d.status), d.test ? [' ', badge('test', 'test')] : null),
        h('dt', null, t('From')), h('dd', null, owner),
        cause ? [h('dt', null, t('Caused by')), h('dd', { id: 'delivery-cause' }, t('conversion {type}', { type: cause.type }),
          cause.tid ? ' (tid ' + cause.tid + ')' : null, ', ', when(cause.at))] : null,
        d.chatId != null ? [h('dt', null, t('Chat id')), h('dd', null, d.botId ? h('a', { href: '#/bots/' + enc(d.botId) + '/dialogs/' + enc(d.chatId) }, String(d.chatId)) : String(d.chatId))] : null,
        d.callId != null ? [h('dt', null, t('Call')), h('dd', null, String(d.callId) + (d.event ? ' (' + d.event + ')' : ''))] : null,
        h('dt', null, t('Attempts')), h('dd', null, d.attempts.length + ' / ' + d.maxAttempts),
        d.nextAttemptAt ? [h('dt', null, t('Next attempt')), h('dd', null, when(d.nextAttemptAt))] : null,
        d.replayOf ? [h('dt', null, t('Replay of')), h('dd', null, h('a', { href: '#/deliveries/' + enc(d.replayOf) }, d.replayOf))] : null,
        d.missing && d.missing.length ? [h('dt', null, t('No value')), h('dd', { class: 'mono' }, d.missing.join(', '))] : null,
        d.error ? [h('dt', null, t('Error')), h('dd', { class: 'error' }, d.error)] : null,
        h('dt', null, t('Created')), h('dd', null, when(d.createdAt)))),
      h('div', { class: 'actions' }, d.status === 'retrying' && !d.test ? button(t('Retry now'), async () => {
        if (!confirm(t('Make the next attempt now, instead of at {at}? {url}', { at: when(d.nextAttemptAt), url: d.request.method + ' ' + d.request.url }))) return;
        const r = await api('POST', '/api/deliveries/' + enc(d.id) + '/retry');
        toast(r.status === 'delivered' ? t('Delivered') : t('Tried: {status}', { status: t(r.status) }));
        route();
      }, 'primary', { id: 'retry-now' }) : null, button(t('Replay'), async () => {
        if (!confirm(t('Send this request again to {url}? The receiver gets it a second time: a tracker may count a second conversion.', { url: d.request.method + ' ' + d.request.url }))) return;
        const r = await api('POST', '/api/deliveries/' + enc(d.id) + '/replay');
        toast(t('Replayed'));
        location.hash = '#/deliveries/' + enc(r.id);
      }, 'primary', { id: 'replay' })),
      h('h2', null, t('Request')),
      h('div', { class: 'card' }, h('pre', { class: 'mono', id: 'request-line' }, d.request.method + ' ' + d.request.url),
        headerList(d.request.headers), d.request.body ? h('pre', { class: 'mono' }, d.request.body) : null),
      h('h2', null, t('Attempts')),
      d.attempts.length ? h('ol', { id: 'attempts' }, d.attempts.map((a) => h('li', { class: 'card' },
        h('p', null, h('strong', null, a.status == null ? t('no answer') : 'HTTP ' + a.status), ' · ', when(a.at), ' · ', t('{n} ms', { n: a.durationMs })),
        a.error ? h('p', { class: 'error' }, a.error) : null,
        headerList(a.headers),
        a.body ? h('pre', { class: 'mono' }, a.body) : null,
        a.truncated ? h('p', { class: 'muted' }, t('(cut: the log keeps the first 4 KB and 32 headers of an answer)')) : null))) : h('p', { class: 'muted' }, t('No attempts yet.')));
  }

  // ---- call tracking -----------------------------------------------------------------------
  /** CallKeeper's webhook form asks for the protocol, host, port and path apart: each with Copy. */
  function callkeeperFields(url, id, keyInPath) {
    let u;
    try { u = new URL(url, location.origin); } catch (_) { return null; }
    const protocol = u.protocol.replace(':', '');
    const port = u.port || (protocol === 'https' ? '443' : '80');
    let path = u.pathname;
    try { path = decodeURIComponent(path); } catch (_) { /* shown as it is */ }
    const rows = [[t('Protocol'), protocol], [t('Host'), u.hostname], [t('Port'), port], [t('Path'), path]];
    return h('dl', { class: 'kv callkeeper', id }, rows.map(([label, value], i) => [h('dt', null, label),
      h('dd', null, h('span', { class: 'mono' }, value), ' ', i === 3 && !keyInPath ? null : copyButton(value, t('Copy')))]));
  }
  function keyOnce(s) {
    return h('div', { class: 'banner ok', id: 'ingest-once', role: 'status' },
      h('p', null, h('strong', null, t('Shown once: copy the key and the URLs now.'))),
      h('p', null, t('For CallKeeper, these four fields:')),
      callkeeperFields(s.ingestUrlWithKey, 'callkeeper-once', true),
      h('p', null, t('URL with the key in its path (CallKeeper)'), ' ', h('span', { class: 'mono', id: 'ingest-url' }, s.ingestUrlWithKey), ' ', copyButton(s.ingestUrlWithKey)),
      h('p', null, t('Ingest key'), ' ', h('span', { class: 'mono' }, s.ingestKey), ' ', copyButton(s.ingestKey)),
      h('p', null, t('Ingest URL'), ' ', h('span', { class: 'mono' }, s.ingestUrl), ' ', copyButton(s.ingestUrl)));
  }
  let justCreated = null;

  async function servicesPage() {
    const list = await api('GET', '/api/calls/services?limit=200');
    const name = input('name', '', { required: true });
    return page(t('Call tracking'),
      h('p', { class: 'muted' }, t('A service is a call-tracking account, site or widget (CallKeeper). Its hooks turn call events into requests.')),
      h('div', { class: 'card' }, form({ id: 'create-service' }, [h('div', { class: 'row' },
        h('div', { class: 'grow' }, field(t('New service name'), name)),
        h('button', { type: 'submit', class: 'primary' }, t('Create service')))], async () => {
        const s = await api('POST', '/api/calls/services', { name: name.value });
        justCreated = s;
        location.hash = '#/calls/' + enc(s.id);
      })),
      list.items.length ? h('div', { class: 'card table-wrap' }, h('table', { id: 'services' },
        h('thead', null, h('tr', null, h('th', null, t('Name')), h('th', null, t('Hooks')), h('th', { class: 'opt' }, t('Created')), h('th', null, ''))),
        h('tbody', null, list.items.map((s) => h('tr', null,
          h('td', null, h('a', { href: '#/calls/' + enc(s.id) }, s.name)), h('td', null, String(s.hookCount)),
          h('td', { class: 'opt' }, when(s.createdAt)),
          h('td', null, button(t('Delete'), async () => {
            if (!confirm(t('Delete the service "{name}"? Its hooks go at once and its ingest URLs stop; its deliveries stay in the log.', { name: s.name }))) return;
            await api('DELETE', '/api/calls/services/' + enc(s.id));
            route();
          }, 'danger'))))))) : h('p', { class: 'muted' }, t('No services yet.')));
  }

  function hookTarget(k) {
    return k.protocol + '://' + k.host + ':' + k.port + k.path;
  }

  async function servicePage(serviceId) {
    const [s, refused] = await Promise.all([api('GET', '/api/calls/services/' + enc(serviceId)),
      api('GET', '/api/calls/services/' + enc(serviceId) + '/refused-events?limit=20')]);
    const once = justCreated && justCreated.id === s.id ? justCreated : null;
    justCreated = null;
    const onceBox = h('div', null, once ? keyOnce(once) : null);
    const hooks = s.hooks || [];
    return page(s.name,
      crumbs(['#/calls', t('Call tracking')], [null, s.name]),
      onceBox,
      h('div', { class: 'card' }, h('h2', null, t('Ingest')),
        h('p', { class: 'muted' }, t('For CallKeeper: add a webhook with these protocol, host, port and path, for both events. The path ends with the key, shown once when the key is made: "pk_…" stands for it.')),
        callkeeperFields(location.origin + s.ingestPathPrefix + 'pk_…', 'callkeeper'),
        h('p', { class: 'muted' }, t('Key ends with {hint}. Other trackers may send the key in X-Ingest-Key or ?key=. Lost the URLs? Rotate the key to get new ones.', { hint: s.ingestKeyHint })),
        s.legacyPathKey ? h('p', { class: 'banner warn', id: 'legacy-path-key' }, t('This service was made before path keys were secret from the store: rotate its key to renew the URL with the key in its path.')) : null,
        button(t('Rotate key'), async () => {
          if (!confirm(t('Make a new key? The old key and the old URLs stop at once.'))) return;
          const r = await api('POST', '/api/calls/services/' + enc(serviceId) + '/ingest-key');
          onceBox.replaceChildren(keyOnce(r));
          const legacy = document.getElementById('legacy-path-key');
          if (legacy) legacy.remove();
        }, null, { id: 'rotate-key' })),
      h('h2', null, t('Hooks')),
      h('div', { class: 'actions' }, h('a', { href: '#/calls/' + enc(serviceId) + '/hooks/new', id: 'add-hook', class: 'button' }, t('+ Address')),
        h('a', { href: '#/deliveries?serviceId=' + enc(serviceId) }, t('Deliveries'))),
      hooks.length ? h('div', { class: 'card table-wrap' }, h('table', { id: 'hooks' },
        h('thead', null, h('tr', null, h('th', null, t('Name')), h('th', null, t('Event')), h('th', { class: 'opt' }, t('Address')), h('th', null, t('Enabled')), h('th', null, ''))),
        h('tbody', null, hooks.map((k) => {
          const toggle = h('input', { type: 'checkbox', checked: k.enabled, 'aria-label': t('Enabled') + ' ' + (k.name || hookTarget(k)) });
          toggle.addEventListener('change', async () => {
            try {
              await api('PATCH', '/api/calls/services/' + enc(serviceId) + '/hooks/' + enc(k.id), { enabled: toggle.checked });
              toast(toggle.checked ? t('Enabled') : t('Disabled'));
            } catch (e) { toggle.checked = !toggle.checked; toast(e.message); }
          });
          return h('tr', null,
            h('td', null, h('a', { href: '#/calls/' + enc(serviceId) + '/hooks/' + enc(k.id) }, k.name || t('(no name)')), k.gone ? [' ', badge('gone')] : null, stateBadge(k.deliveryState)),
            h('td', null, k.event === 'start' ? t('Call is processing') : t('Call is over')),
            h('td', { class: 'opt mono' }, k.method + ' ' + hookTarget(k)),
            h('td', null, toggle),
            h('td', null, h('div', { class: 'actions' },
              button(t('Test-send'), async () => {
                const out = document.getElementById('hook-test-result');
                try {
                  const d = await api('POST', '/api/calls/services/' + enc(serviceId) + '/hooks/' + enc(k.id) + '/test-send');
                  out.replaceChildren(h('h3', null, t('Test of {name}', { name: k.name || hookTarget(k) })), deliverySummary(d));
                } catch (e) { out.replaceChildren(errorBanner(e)); }
              }),
              h('a', { href: '#/deliveries?serviceId=' + enc(serviceId) + '&hookId=' + enc(k.id) }, t('Deliveries')),
              button(t('Delete'), async () => {
                if (!confirm(t('Delete the hook "{name}"?', { name: k.name || hookTarget(k) }))) return;
                await api('DELETE', '/api/calls/services/' + enc(serviceId) + '/hooks/' + enc(k.id));
                route();
              }, 'danger'))));
        })))) : h('p', { class: 'muted' }, t('No hooks yet.')),
      h('div', { id: 'hook-test-result', 'aria-live': 'polite' }),
      refusedTable(refused.items, 'refused-events', t('Refused call events'),
        t('The newest call events this service\'s ingest URLs refused (100 are kept), without the key. The telephony side got the same answer.'),
        t('None lately: every call event was taken.')));
  }

  /** One parameter row of CallKeeper's form: name -> a preset, a constant or a template. */
  function parameterRow(presets, p, rows) {
    const index = () => [...rows.children].indexOf(row);
    const kindOf = p.param != null ? 'param' : p.value != null ? 'value' : p.template != null ? 'template' : 'param';
    const pname = input('', p.name || '', { 'aria-label': t('Parameter name'), placeholder: t('Parameter name') });
    const kind = select('', [['param', t('Call parameter')], ['value', t('Constant')], ['template', t('Template')]], kindOf, { 'aria-label': t('Value kind') });
    const preset = select('', presets.map((x) => [x.name, x.name + (x.knownAtStart ? '' : ' ' + t('(at call end)'))]), p.param || 'id', { 'aria-label': t('Call parameter') });
    const text = input('', p.value != null ? p.value : p.template || '', { class: 'mono', 'aria-label': t('Value'), placeholder: t('Value') });
    const desc = h('small', { class: 'muted' });
    const valueBox = h('div', null, preset, text, desc);
    const sync = () => {
      const i = index();
      pname.name = 'parameters[' + i + '].name';
      preset.name = 'parameters[' + i + '].param';
      text.name = 'parameters[' + i + '].' + kind.value;
      preset.hidden = kind.value !== 'param';
      text.hidden = kind.value === 'param';
      const x = presets.find((y) => y.name === preset.value);
      desc.textContent = kind.value === 'param' && x ? t(x.description) + (x.knownAtStart ? '' : ' — ' + t('not known at call start')) : '';
    };
    kind.addEventListener('change', sync);
    preset.addEventListener('change', sync);
    // Each control in a cell of its own: an error shown under one keeps the row's shape.
    const row = h('div', { class: 'param-row' }, h('div', null, pname), h('div', null, kind), valueBox,
      button('×', () => { row.remove(); [...rows.children].forEach((r) => r.sync()); }, null, { 'aria-label': t('Remove parameter'), class: 'remove' }));
    row.sync = sync;
    row.value = () => {
      const out = { name: pname.value };
      if (kind.value === 'param') out.param = preset.value; else out[kind.value] = text.value;
      return out;
    };
    return row;
  }

  async function hookEditor(serviceId, hookId) {
    const isNew = hookId === 'new';
    const [s, k] = await Promise.all([api('GET', '/api/calls/services/' + enc(serviceId)),
      isNew ? Promise.resolve(null) : api('GET', '/api/calls/services/' + enc(serviceId) + '/hooks/' + enc(hookId))]);
    const hook = k || { name: '', protocol: 'https', host: '', port: 443, path: '/', parameters: [], method: 'GET', contentType: 'application/json', event: 'end', enabled: true, timeoutMs: 10000, retry: { maxAttempts: 8 }, signed: false };
    const presets = s.parameters || [];
    const name = input('name', hook.name);
    const protocol = select('protocol', [['https', 'https'], ['http', 'http']], hook.protocol);
    const host = input('host', hook.host, { autocomplete: 'off', placeholder: 'crm.example.com', required: true });
    const port = input('port', hook.port, { type: 'number', min: 1, max: 65535 });
    protocol.addEventListener('change', () => {
      if (port.value === '443' || port.value === '80' || !port.value) port.value = protocol.value === 'https' ? '443' : '80';
    });
    const path = input('path', hook.path, { class: 'mono' });
    const rows = h('div', { id: 'parameters' });
    const addParam = (p) => { const row = parameterRow(presets, p, rows); rows.append(row); row.sync(); };
    hook.parameters.forEach(addParam);
    const method = select('method', [['GET', 'GET'], ['POST', 'POST']], hook.method);
    const contentType = select('contentType', [['application/json', 'application/json'], ['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded']], hook.contentType);
    const ctBox = field(t('Content type'), contentType);
    const showCt = () => { ctBox.hidden = method.value !== 'POST'; };
    method.addEventListener('change', showCt);
    showCt();
    const event = select('event', [['end', t('Call is over')], ['start', t('Call is processing')]], hook.event);
    const enabled = h('input', { type: 'checkbox', name: 'enabled', checked: hook.enabled });
    const timeout = input('timeoutMs', hook.timeoutMs, { type: 'number', min: 100, max: 25000 });
    const attempts = input('retry.maxAttempts', hook.retry.maxAttempts, { type: 'number', min: 1, max: 8 });
    const rate = input('rateLimit', hook.rateLimit == null ? '' : hook.rateLimit, { type: 'number', min: 0.01, max: 1000, step: 'any', placeholder: t('no limit') });
    const secret = input('signingSecret', '', { class: 'mono', autocomplete: 'off', placeholder: hook.signed ? t('set; leave empty to keep it') : 'whsec_…' });
    const original = JSON.stringify(hook.parameters);
    const f = form({ id: 'hook-form' }, [h('div', { class: 'card' },
      field(t('Name'), name),
      h('div', { class: 'row' }, h('div', null, field(t('Protocol'), protocol)), h('div', { class: 'grow' }, field(t('Host'), host)),
        h('div', null, field(t('Port'), port))),
      field(t('Path'), path, t('Everything before "?"; query parameters go in the rows below.')),
      h('h3', null, t('Parameters')),
      h('div', { class: 'param-row param-head', 'aria-hidden': 'true' }, h('span', null, t('Parameter name')), h('span', null, t('Value kind')), h('span', null, t('Value')), h('span')),
      rows,
      button(t('+ Parameter'), () => addParam({ name: '', param: 'id' }), null, { id: 'add-param' }),
      h('div', { class: 'row' }, h('div', { class: 'grow' }, field(t('Method'), method)), h('div', { class: 'grow' }, ctBox),
        h('div', { class: 'grow' }, field(t('Event'), event))),
      h('label', { class: 'check' }, enabled, t('Enabled')),
      h('div', { class: 'row' }, h('div', { class: 'grow' }, field(t('Timeout, ms'), timeout)), h('div', { class: 'grow' }, field(t('Attempts'), attempts)),
        h('div', { class: 'grow' }, field(t('Rate limit, per second'), rate))),
      field(t('Signing secret'), secret)),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, t('Save hook')),
      isNew ? null : h('a', { href: '#/deliveries?serviceId=' + enc(serviceId) + '&hookId=' + enc(hookId) }, t('Deliveries')))], async () => {
      const body = { name: name.value, protocol: protocol.value, host: host.value.trim(), port: Number(port.value) || undefined,
        path: path.value || '/', method: method.value, contentType: contentType.value, event: event.value, enabled: enabled.checked,
        timeoutMs: Number(timeout.value) || undefined, retry: { maxAttempts: Number(attempts.value) || 8 },
        rateLimit: rate.value.trim() ? Number(rate.value) : null };
      const params = [...rows.children].map((r) => r.value());
      // A PATCH keeps masked constants and the secret; send the rows only when they changed.
      if (isNew || JSON.stringify(params) !== original) body.parameters = params;
      if (secret.value.trim()) body.signingSecret = secret.value.trim();
      if (isNew) await api('POST', '/api/calls/services/' + enc(serviceId) + '/hooks', body);
      else await api('PATCH', '/api/calls/services/' + enc(serviceId) + '/hooks/' + enc(hookId), body);
      toast(t('Saved'));
      location.hash = '#/calls/' + enc(serviceId);
    });
    return page(isNew ? t('New address') : t('Hook {name}', { name: hook.name || hookTarget(hook) }),
      crumbs(['#/calls', t('Call tracking')], ['#/calls/' + enc(serviceId), s.name], [null, isNew ? t('New address') : (hook.name || hookId)]),
      hook.gone ? h('p', { class: 'banner warn' }, t('The receiver answered 410 Gone: events are skipped until the hook is saved again.')) : null, f,
      isNew ? null : statePanel(hook.deliveryState, '/api/calls/services/' + enc(serviceId) + '/hooks/' + enc(hookId), { serviceId, hookId }));
  }

  // ---- API keys and the audit trail (admins) ---------------------------------------------
  const ROLES = ['viewer', 'editor', 'admin'];
  function scopeText(scope, names) {
    if (scope === 'all') return t('all');
    if (!scope || !scope.length) return '—';
    return scope.map((id) => names[id] || id).join(', ');
  }
  /** Checkboxes for a key's bots or services: "all", or some of them. */
  function scopePicker(name, items, value) {
    const all = h('input', { type: 'checkbox', name: name + '.all', checked: value === 'all' });
    const boxes = items.map((it) => h('input', { type: 'checkbox', value: it.id, 'aria-label': it.name,
      checked: Array.isArray(value) && value.includes(it.id) }));
    const list = h('div', { class: 'scope-list', hidden: value === 'all' }, boxes.length
      ? boxes.map((b, i) => h('label', { class: 'check' }, b, items[i].name))
      : h('span', { class: 'muted' }, t('none yet')));
    all.addEventListener('change', () => { list.hidden = all.checked; });
    const el = h('div', { class: 'scope', 'data-scope': name }, h('label', { class: 'check' }, all, t('All, those made later too')), list);
    el.scopeValue = () => (all.checked ? 'all' : boxes.filter((b) => b.checked).map((b) => b.value));
    return el;
  }
  async function keysPage() {
    const [keys, bots, services] = await Promise.all([api('GET', '/api/keys'),
      api('GET', '/api/bots?limit=200'), api('GET', '/api/calls/services?limit=200')]);
    const names = {};
    for (const it of [...bots.items, ...services.items]) names[it.id] = it.name;
    const shown = h('div', { id: 'new-key' });
    const showKey = (k, what) => shown.replaceChildren(h('div', { class: 'banner warn' },
      what, ' ', h('code', { class: 'mono', id: 'new-key-value' }, k.key), ' ', copyButton(k.key)));
    const rows = keys.items.map((k) => h('tr', null,
      h('td', null, k.name), h('td', null, t(k.role)),
      h('td', { class: 'opt' }, scopeText(k.bots, names)), h('td', { class: 'opt' }, scopeText(k.services, names)),
      h('td', { class: 'mono opt' }, k.startsWith + '…'), h('td', { class: 'opt' }, when(k.rotatedAt || k.createdAt)),
      h('td', null, h('div', { class: 'actions' },
        button(t('Rotate'), async () => {
          if (!confirm(t('Rotate the key "{name}"? The key in use stops working at once; the new one is shown once.', { name: k.name }))) return;
          showKey(await api('POST', '/api/keys/' + enc(k.id) + '/rotate'), t('The new key, shown this once:'));
        }, null, { 'aria-label': t('Rotate') + ' ' + k.name }),
        button(t('Revoke'), async () => {
          if (!confirm(t('Revoke the key "{name}"? It stops working at once, everywhere.', { name: k.name }))) return;
          await api('DELETE', '/api/keys/' + enc(k.id));
          toast(t('Revoked'));
          route();
        }, 'danger', { 'aria-label': t('Revoke') + ' ' + k.name })))));
    const name = input('name', '', { required: true, maxlength: 100 });
    const role = select('role', ROLES.map((r) => [r, t(r)]), 'viewer');
    const botsPick = scopePicker('bots', bots.items, []);
    const servicesPick = scopePicker('services', services.items, []);
    const scopes = h('div', { class: 'row' }, h('div', { class: 'grow' }, h('p', null, h('strong', null, t('Bots'))), botsPick),
      h('div', { class: 'grow' }, h('p', null, h('strong', null, t('Call tracking'))), servicesPick));
    role.addEventListener('change', () => { scopes.hidden = role.value === 'admin'; });
    return page(t('API keys'),
      h('p', { class: 'muted' }, t('Keys for people and scripts. A viewer reads; an editor changes the bots and services you give it; an admin does everything, keys included. A key is shown once; keep it like a password.')),
      shown,
      rows.length ? h('div', { class: 'card table-wrap' }, h('table', { id: 'keys' },
        h('thead', null, h('tr', null, h('th', null, t('Name')), h('th', null, t('Role')), h('th', { class: 'opt' }, t('Bots')),
          h('th', { class: 'opt' }, t('Call tracking')), h('th', { class: 'opt' }, t('Starts with')), h('th', { class: 'opt' }, t('Issued')), h('th', null, ''))),
        h('tbody', null, rows))) : h('p', { class: 'muted' }, t('No keys yet: only the admin token opens the console.')),
      h('h2', null, t('New key')),
      h('div', { class: 'card' }, form({ id: 'create-key' }, [h('div', { class: 'row' },
        h('div', { class: 'grow' }, field(t('Name'), name)), h('div', null, field(t('Role'), role))), scopes,
        h('button', { type: 'submit', class: 'primary' }, t('Create key'))], async () => {
        const body = { name: name.value.trim(), role: role.value };
        if (role.value !== 'admin') {
          body.bots = botsPick.scopeValue();
          body.services = servicesPick.scopeValue();
        }
        const k = await api('POST', '/api/keys', body);
        await route();
        showKeyAfter(k);
      })));
  }
  /** After the page is drawn again: the key just made, shown once. */
  function showKeyAfter(k) {
    const box = document.getElementById('new-key');
    if (box) box.replaceChildren(h('div', { class: 'banner warn' }, t('The key, shown this once: give it to its holder.'), ' ',
      h('code', { class: 'mono', id: 'new-key-value' }, k.key), ' ', copyButton(k.key)));
  }
  async function auditPage(q) {
    const query = new URLSearchParams();
    for (const k of ['keyId', 'botId', 'serviceId', 'action', 'cursor']) if (q.get(k)) query.set(k, q.get(k));
    query.set('limit', '50');
    const [trail, keys] = await Promise.all([api('GET', '/api/audit?' + query), api('GET', '/api/keys')]);
    const who = select('keyId', [['', t('any')], ['root', t('admin token')], ...keys.items.map((k) => [k.id, k.name])], q.get('keyId') || '');
    const action = input('action', q.get('action') || '', { class: 'mono', autocomplete: 'off', placeholder: 'putStep' });
    const filters = form({ id: 'audit-filters', class: 'card' }, [h('div', { class: 'row' },
      h('div', { class: 'grow' }, field(t('Key'), who)), h('div', { class: 'grow' }, field(t('Action'), action)),
      h('button', { type: 'submit', class: 'primary' }, t('Filter')))], async () => {
      const next = new URLSearchParams();
      if (who.value) next.set('keyId', who.value);
      if (action.value.trim()) next.set('action', action.value.trim());
      location.hash = '#/audit' + (next.toString() ? '?' + next : '');
    });
    const next = new URLSearchParams(q);
    if (trail.nextCursor) next.set('cursor', trail.nextCursor);
    return page(t('Audit trail'),
      h('p', { class: 'muted' }, t('Every change made through the API and this console, newest first: who, what, on what, and which fields (never their values). The newest 10,000 are kept.')),
      filters,
      trail.items.length ? h('div', { class: 'card table-wrap' }, h('table', { id: 'audit' },
        h('thead', null, h('tr', null, h('th', null, t('When')), h('th', null, t('Key')), h('th', null, t('Action')),
          h('th', { class: 'opt' }, t('Path')), h('th', { class: 'opt' }, t('Fields')))),
        h('tbody', null, trail.items.map((e) => h('tr', null,
          h('td', null, when(e.at)), h('td', null, e.keyId === 'root' ? t('admin token') : e.keyName),
          h('td', { class: 'mono' }, e.action), h('td', { class: 'opt mono' }, e.method + ' ' + e.path),
          h('td', { class: 'opt mono' }, (e.fields || []).join(', '))))))) : h('p', { class: 'muted' }, t('No changes match.')),
      trail.nextCursor ? h('a', { href: '#/audit?' + next }, t('Next page')) : null);
  }

  // ---- start ------------------------------------------------------------------------------
  langSelect.value = lang;
  document.documentElement.lang = lang;
  langSelect.addEventListener('change', () => {
    lang = langSelect.value;
    localStorage.setItem(LANG_KEY, lang);
    document.documentElement.lang = lang;
    route();
  });
  signOutButton.addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  route();
})();
