'use strict';
(() => {
  const RECONNECT_MS = 2500;
  const PREVIEW_DELAY_MS = 200;
  const PAGE_SIZE = 50;
  const MAX_PAGE = 500;
  const CHATS_SHOWN = 100;
  const TOKEN_KEY = 'cartloop.apiToken';

  const $ = (id) => document.getElementById(id);
  const el = {
    layout: $('layout'),
    connection: $('connection'),
    who: $('who'),
    whoName: $('who-name'),
    whoRole: $('who-role'),
    whoStore: $('who-store'),
    signOut: $('sign-out'),
    signin: $('signin'),
    loginForm: $('login-form'),
    loginEmail: $('login-email'),
    loginPassword: $('login-password'),
    loginError: $('login-error'),
    loginSubmit: $('login-submit'),
    filter: document.querySelectorAll('input[name="status"]'),
    list: $('conversation-list'),
    listError: $('list-error'),
    listInfo: $('list-info'),
    listEmpty: $('list-empty'),
    listEmptyTitle: $('list-empty-title'),
    listEmptyText: $('list-empty-text'),
    importDemo: $('import-demo'),
    loadMore: $('load-more'),
    placeholder: $('conversation-placeholder'),
    pane: $('conversation-pane'),
    back: $('back-button'),
    title: $('conversation-title'),
    sub: $('conversation-sub'),
    status: $('conversation-status'),
    resolve: $('resolve-button'),
    reassign: $('reassign'),
    reassignSelect: $('reassign-select'),
    convError: $('conversation-error'),
    chatScroll: $('chat-scroll'),
    chats: $('chat-list'),
    compose: $('compose'),
    composeTo: $('compose-to'),
    composeAs: $('compose-as'),
    resolvedNote: $('resolved-note'),
    assignedNote: $('assigned-note'),
    input: $('compose-input'),
    sendLater: $('send-later'),
    charCount: $('char-count'),
    preview: $('preview'),
    send: $('send-button'),
    sendError: $('send-error'),
    tokenForm: $('token-form'),
    tokenInput: $('token-input'),
    tokenError: $('token-error'),
  };

  const state = {
    filter: 'open',
    conversations: [],
    nextCursor: null,
    listLoaded: false,
    listSeq: 0,
    selectedId: null,
    conversation: null,
    convSeq: 0,
    scrollToEnd: false,
    atEnd: true,
    names: new Map(),
    details: new Map(),
    detailsLoading: new Set(),
    drafts: new Map(),
    previewTimer: 0,
    previewSeq: 0,
    sending: false,
    idempotencyKey: null,
    // Who is signed in (`GET /me`); null while signed out or not yet known.
    me: null,
    storeName: null,
    // Each store's operators (`GET /operators/`), by store id, and their names by id.
    operators: new Map(),
    operatorNames: new Map(),
    pollTimer: 0,
    // The live stream (`GET /events/`): its abort handle, which opening is current, the
    // last event id seen (to resume from), and the refresh its events have asked for.
    stream: null,
    streamGen: 0,
    streamTimer: 0,
    streamFailures: 0,
    lastEventId: null,
    refreshTimer: 0,
    dirtyList: false,
    dirtyConversation: false,
    resyncedAt: Date.now(),
  };

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || (status ? `The server answered ${status}.` : 'Cannot reach the server.'));
      this.status = status;
      this.code = error.code || (status ? `http_${status}` : 'network');
      this.position = Number.isInteger(error.position) ? error.position : null;
    }
  }

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { return ''; }
  }

  async function api(method, path, body, headers = {}) {
    const init = { method, headers: { Accept: 'application/json', ...headers }, cache: 'no-store' };
    const bearer = token();
    if (bearer) init.headers.Authorization = `Bearer ${bearer}`;
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      setConnection('offline');
      throw new ApiError(0, null);
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (response.status === 401) {
      showSignIn(bearer !== '' ? 'token' : state.me && state.me.via === 'session' ? 'session' : null);
      throw new ApiError(401, data);
    }
    setConnection('live');
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function setConnection(kind) {
    if (!state.me && kind === 'live') return;
    const labels = { live: 'Live', offline: 'Offline, retrying…', locked: 'Signed out', connecting: 'Connecting…' };
    if (el.connection.dataset.state === kind) return;
    el.connection.dataset.state = kind;
    el.connection.textContent = labels[kind];
  }

  // ---------------------------------------------------------------- signing in

  function forgetToken() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* nothing kept */ }
  }

  // Signed out (or never in): the sign-in view, with why when there is a reason to say.
  function showSignIn(reason) {
    const wasShown = !el.signin.hidden;
    state.me = null;
    stopFollowing();
    state.lastEventId = null;
    setConnection('locked');
    el.layout.hidden = true;
    el.signin.hidden = false;
    el.who.hidden = true;
    el.signOut.hidden = true;
    if (reason === 'token') {
      forgetToken();
      showNotice(el.tokenError, 'The server did not accept that token or key.');
      el.tokenInput.value = '';
      el.tokenInput.focus();
    } else if (reason === 'session') {
      showNotice(el.loginError, 'Your session has ended. Sign in again.');
    }
    if (!wasShown) {
      el.loginPassword.value = '';
      if (reason !== 'token') el.loginEmail.focus();
    }
  }

  // What the previous operator saw is not left for the next one.
  function forgetData() {
    state.conversations = [];
    state.nextCursor = null;
    state.listLoaded = false;
    state.selectedId = null;
    state.conversation = null;
    state.names.clear();
    state.details.clear();
    state.drafts.clear();
    state.operators.clear();
    state.operatorNames.clear();
    state.storeName = null;
    el.list.replaceChildren();
    el.chats.replaceChildren();
    el.listEmpty.hidden = true;
    el.input.value = '';
    if (location.hash) history.replaceState(null, '', location.pathname);
  }

  // Asks the server who this is; signed in: the console, else the sign-in view.
  async function connect() {
    clearTimeout(state.pollTimer);
    let me;
    try {
      me = await api('GET', '/me');
    } catch (error) {
      // 401: the sign-in view is up. Unreachable: ask again shortly.
      if (error.status !== 401) state.pollTimer = setTimeout(connect, RECONNECT_MS);
      return;
    }
    state.me = me;
    setConnection('live');
    el.signin.hidden = true;
    el.layout.hidden = false;
    showNotice(el.loginError, '');
    showNotice(el.tokenError, '');
    renderWho();
    if (me.storeId) {
      loadStoreName(me.storeId);
      loadOperators(me.storeId);
    }
    route();
    follow();
  }

  function renderWho() {
    const me = state.me;
    const name = me.name || (me.via === 'token' && token() ? 'Deployment token' : '');
    el.whoName.textContent = name;
    el.whoName.hidden = !name;
    el.whoRole.textContent = me.role;
    el.whoStore.textContent = me.storeId ? state.storeName || `Store #${me.storeId}` : 'every store';
    el.who.hidden = false;
    // A server without a token has nobody to sign out.
    el.signOut.hidden = me.via !== 'session' && token() === '';
  }

  async function loadStoreName(id) {
    try {
      const store = await api('GET', `/store/${id}/`);
      if (state.me && state.me.storeId === id && store && store.name) {
        state.storeName = store.name;
        renderWho();
      }
    } catch (_) { /* the store's number says enough */ }
  }

  // The operators of `store`, for authors' names and for reassigning.
  async function loadOperators(store) {
    try {
      const data = await api('GET', `/operators/?storeId=${store}`);
      const operators = (data && data.operators) || [];
      state.operators.set(store, operators);
      for (const o of operators) state.operatorNames.set(o.operatorId, o.name);
      if (state.conversation) {
        renderHeader();
        refreshAuthors();
      }
    } catch (_) { /* operators show by number; the next conversation asks again */ }
  }

  function operatorName(id) {
    return state.operatorNames.get(id) || `Operator #${id}`;
  }

  // An operator's session (or key) writes as itself: `userId` is left out and the server
  // fills it in. The token and store keys write as the conversation's operator, as before.
  function writesAsItself() {
    return !!state.me && (state.me.via === 'session' || state.me.role === 'operator');
  }

  function retryAfterMinutes(header) {
    const seconds = Number(header);
    return Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds / 60) : 15;
  }

  function loginFailure(status, data, retryAfter) {
    const code = data && data.error && data.error.code;
    if (status === 401) return 'Wrong email or password.';
    if (status === 429) {
      const minutes = retryAfterMinutes(retryAfter);
      return `Too many failed attempts for this email. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`;
    }
    if (code === 'invalid_email') return 'That is not an email address.';
    return new ApiError(status, data).message;
  }

  el.loginForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const email = el.loginEmail.value.trim();
    const password = el.loginPassword.value;
    if (!email || !password) {
      showNotice(el.loginError, 'Enter your email and password.');
      return;
    }
    showNotice(el.loginError, '');
    el.loginSubmit.disabled = true;
    let response;
    let data = null;
    try {
      response = await fetch('/login', {
        method: 'POST',
        headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
        body: JSON.stringify({ email, password }),
        cache: 'no-store',
        credentials: 'same-origin',
      });
      try { data = await response.json(); } catch (_) { data = null; }
    } catch (_) {
      showNotice(el.loginError, 'Cannot reach the server. Try again in a moment.');
      return;
    } finally {
      el.loginSubmit.disabled = false;
    }
    if (response.ok) {
      // The session is the credential from now on; a token kept from before would win.
      forgetToken();
      el.loginPassword.value = '';
      connect();
      return;
    }
    showNotice(el.loginError, loginFailure(response.status, data, response.headers.get('Retry-After')));
    el.loginPassword.value = '';
    el.loginPassword.focus();
  });

  el.tokenForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = el.tokenInput.value.trim();
    if (!value) {
      showNotice(el.tokenError, 'Enter the token or key.');
      return;
    }
    showNotice(el.tokenError, '');
    try { sessionStorage.setItem(TOKEN_KEY, value); } catch (_) { /* private mode: the token lives until reload */ }
    setConnection('connecting');
    connect();
  });

  el.signOut.addEventListener('click', async () => {
    el.signOut.disabled = true;
    try {
      if (state.me && state.me.via === 'session') await api('POST', '/logout');
    } catch (error) {
      if (error.status !== 401) {
        showNotice(el.listError, `Could not sign out: ${error.message}`);
        el.signOut.disabled = false;
        return;
      }
    }
    el.signOut.disabled = false;
    forgetToken();
    forgetData();
    showNotice(el.loginError, '');
    showNotice(el.tokenError, '');
    showSignIn(null);
  });

  // ---------------------------------------------------------------- time

  const formats = new Map();
  function formatter(zone, options) {
    const key = `${zone}|${JSON.stringify(options)}`;
    let format = formats.get(key);
    if (!format) {
      try {
        format = new Intl.DateTimeFormat('en-US', { ...options, timeZone: zone || undefined });
      } catch (_) {
        format = new Intl.DateTimeFormat('en-US', { ...options, timeZone: 'UTC' });
      }
      formats.set(key, format);
    }
    return format;
  }

  function localParts(date, zone) {
    const parts = {};
    const options = { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
    for (const part of formatter(zone, options).formatToParts(date)) parts[part.type] = part.value;
    return parts;
  }

  function dayNumber(parts) {
    return Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day)) / 86400000;
  }

  function clock(date, zone) {
    const parts = localParts(date, zone);
    return `${parts.hour}:${parts.minute}`;
  }

  // "15:25" today, "Dec 3, 15:25" another day, "Dec 3, 2020, 15:25" another year.
  function stamp(iso, zone) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return '';
    const now = localParts(new Date(), zone);
    const then = localParts(date, zone);
    if (dayNumber(now) === dayNumber(then)) return `${then.hour}:${then.minute}`;
    const options = now.year === then.year ? { month: 'short', day: 'numeric' } : { month: 'short', day: 'numeric', year: 'numeric' };
    return `${formatter(zone, options).format(date)}, ${then.hour}:${then.minute}`;
  }

  // The list's day stamps, in the operator's own zone: "15:25" today, "Dec 3" earlier.
  function listStamp(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return '';
    const now = new Date();
    if (date.toDateString() === now.toDateString()) return clock(date, undefined);
    const options = date.getFullYear() === now.getFullYear() ? { month: 'short', day: 'numeric' } : { month: 'short', day: 'numeric', year: 'numeric' };
    return formatter(undefined, options).format(date);
  }

  function duration(ms) {
    const minutes = Math.max(1, Math.round(ms / 60000));
    if (ms < 60000) return 'less than a minute';
    if (minutes < 60) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    const rest = minutes % 60;
    if (hours < 48) return rest ? `${hours} h ${rest} min` : `${hours} h`;
    const days = Math.floor(hours / 24);
    const hoursLeft = hours % 24;
    return hoursLeft ? `${days} d ${hoursLeft} h` : `${days} d`;
  }

  // "sends at 09:00 in America/Chicago — in 4 h 20 min", "sends tomorrow at 09:00 in …", "sends now".
  function sendPhrase(sendAtIso, zone, localIso) {
    if (!sendAtIso) return '';
    const at = new Date(sendAtIso);
    if (Number.isNaN(at.getTime())) return '';
    const now = new Date();
    const wait = at.getTime() - now.getTime();
    if (wait <= 30000) return 'sends now';
    let hhmm = clock(at, zone);
    const local = /T(\d{2}):(\d{2})/.exec(localIso || '');
    if (local) hhmm = `${local[1]}:${local[2]}`;
    const days = dayNumber(localParts(at, zone)) - dayNumber(localParts(now, zone));
    let day = '';
    if (days === 1) day = 'tomorrow ';
    else if (days > 1) day = `on ${formatter(zone, { weekday: 'short', month: 'short', day: 'numeric' }).format(at)} `;
    return `sends ${day}at ${hhmm} in ${zone || 'UTC'} — in ${duration(wait)}`;
  }

  // Relative texts change with time alone: refreshed on every tick without re-rendering.
  function refreshRelativeTimes() {
    for (const node of document.querySelectorAll('[data-send-at]')) {
      const text = sendPhrase(node.dataset.sendAt, node.dataset.zone, node.dataset.local);
      if (node.textContent !== text) node.textContent = text;
    }
    if (state.conversation) renderSubtitle(state.conversation);
  }

  // ---------------------------------------------------------------- DOM helpers

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'dataset') Object.assign(node.dataset, value);
      // Styles through the CSSOM: a style attribute would be refused by the page's CSP.
      else if (name === 'style') Object.assign(node.style, value);
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Updates `container`'s children to `items` in order, re-rendering only the items whose
  // signature changed, so polling keeps focus, selection and scroll where they are.
  function reconcile(container, items, keyOf, signatureOf, render) {
    const wanted = new Map(items.map((item) => [String(keyOf(item)), item]));
    const existing = new Map();
    for (const child of Array.from(container.children)) {
      if (wanted.has(child.dataset.key)) existing.set(child.dataset.key, child);
      else child.remove();
    }
    let index = 0;
    for (const [key, item] of wanted) {
      const signature = signatureOf(item);
      let node = existing.get(key);
      if (!node || node.dataset.signature !== signature) {
        const fresh = render(item);
        fresh.dataset.key = key;
        fresh.dataset.signature = signature;
        if (node) {
          const focused = node.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
          node.replaceWith(fresh);
          const again = focused && fresh.querySelector(`[data-testid="${focused}"]`);
          if (again) again.focus();
        }
        node = fresh;
      }
      if (container.children[index] !== node) container.insertBefore(node, container.children[index] || null);
      index += 1;
    }
  }

  function showNotice(node, text) {
    node.textContent = text || '';
    node.hidden = !text;
  }

  function initials(name) {
    const words = String(name).split(/\s+/).filter(Boolean);
    return ((words[0] || '?')[0] + (words.length > 1 ? words[words.length - 1][0] : '')).toUpperCase();
  }

  function avatarColor(id) {
    return `hsl(${(Number(id) * 137) % 360} 45% 45%)`;
  }

  // A payload with its placeholders set apart, so the operator sees what gets filled in.
  function payloadNodes(text) {
    const out = [];
    const pattern = /<<\s*[A-Za-z.]+\s*>>|\{\{\s*[A-Za-z.]+\s*\}\}/g;
    let last = 0;
    for (const match of String(text).matchAll(pattern)) {
      if (match.index > last) out.push(text.slice(last, match.index));
      out.push(h('span', { class: 'ph' }, match[0]));
      last = match.index + match[0].length;
    }
    if (last < text.length) out.push(text.slice(last));
    return out;
  }

  function clientName(conversation) {
    return state.names.get(conversation.conversationId) || `Client #${conversation.clientId}`;
  }

  // ---------------------------------------------------------------- conversations list

  function listLimit() {
    return Math.min(MAX_PAGE, Math.max(PAGE_SIZE, state.conversations.length));
  }

  async function loadList() {
    const seq = ++state.listSeq;
    try {
      const data = await api('GET', `/conversations/?status=${state.filter}&limit=${listLimit()}`);
      if (seq !== state.listSeq) return;
      state.conversations = data.conversations || [];
      state.nextCursor = data.nextCursor || null;
      state.listLoaded = true;
      showNotice(el.listError, '');
      renderList();
    } catch (error) {
      if (seq === state.listSeq && error.status !== 401) {
        showNotice(el.listError, `Could not load the conversations: ${error.message}`);
      }
    }
  }

  async function loadMore() {
    if (!state.nextCursor) return;
    const seq = ++state.listSeq;
    el.loadMore.disabled = true;
    try {
      const cursor = encodeURIComponent(state.nextCursor);
      const data = await api('GET', `/conversations/?status=${state.filter}&limit=${PAGE_SIZE}&cursor=${cursor}`);
      if (seq !== state.listSeq) return;
      const seen = new Set(state.conversations.map((c) => c.conversationId));
      state.conversations = state.conversations.concat((data.conversations || []).filter((c) => !seen.has(c.conversationId)));
      state.nextCursor = data.nextCursor || null;
      renderList();
    } catch (error) {
      if (error.status !== 401) showNotice(el.listError, `Could not load more: ${error.message}`);
    } finally {
      el.loadMore.disabled = false;
    }
  }

  function renderList() {
    for (const conversation of state.conversations) {
      state.names.set(conversation.conversationId, conversation.clientName);
    }
    reconcile(
      el.list,
      state.conversations,
      (c) => c.conversationId,
      (c) => JSON.stringify([c, c.conversationId === state.selectedId, listStamp(c.lastChat ? c.lastChat.createdAt : ''),
        c.lastChat ? state.operatorNames.get(c.lastChat.userId) : null]),
      renderListItem,
    );
    const empty = state.listLoaded && state.conversations.length === 0;
    el.listEmpty.hidden = !empty;
    if (empty) {
      const open = state.filter === 'open';
      const admin = !!state.me && state.me.role === 'admin';
      el.listEmptyTitle.textContent = open ? 'No open conversations' : 'No resolved conversations';
      el.listEmptyText.textContent = !open
        ? 'Conversations you resolve show up here.'
        : admin
          ? 'Load the demo data set to try the console: three stores and two dozen shoppers spread over the world\u2019s time zones.'
          : 'Your store\u2019s conversations show up here as they start.';
      el.importDemo.hidden = !open || !admin;
    }
    el.loadMore.hidden = !state.nextCursor;
    if (state.conversation) renderHeader();
  }

  function renderListItem(c) {
    const last = c.lastChat;
    const fromOperator = last && last.userId !== c.clientId;
    // A signed-in operator's own messages are "You"; a colleague's carry their name.
    const other = fromOperator && state.me && state.me.operatorId && last.userId !== state.me.operatorId;
    const prefix = fromOperator ? (other ? `${operatorName(last.userId)}: ` : 'You: ') : '';
    const lastText = last ? `${prefix}${last.payload}` : 'No messages yet';
    const pending = c.pendingCount > 0
      ? h('span', { class: 'pending', 'data-testid': 'pending-count', title: `${c.pendingCount} waiting to be sent`, 'aria-label': `${c.pendingCount} waiting to be sent` }, String(c.pendingCount))
      : null;
    const button = h('button', {
      type: 'button',
      class: 'conv-item',
      'data-testid': `conversation-${c.conversationId}`,
      'aria-current': c.conversationId === state.selectedId ? 'true' : false,
      onclick: () => selectConversation(c.conversationId),
    },
    h('span', { class: 'avatar', 'aria-hidden': 'true', style: { background: avatarColor(c.clientId) } }, initials(c.clientName)),
    h('span', { class: 'conv-main' },
      h('span', { class: 'conv-row' },
        h('span', { class: 'conv-name', 'data-testid': 'client-name' }, c.clientName),
        last ? h('time', { class: 'conv-when', datetime: last.createdAt, title: new Date(last.createdAt).toLocaleString() }, listStamp(last.createdAt)) : null),
      h('span', { class: 'conv-row' },
        h('span', { class: 'conv-last', 'data-testid': 'last-chat' }, lastText),
        pending),
      h('span', { class: 'conv-row' },
        h('span', { class: 'conv-zone' }, `#${c.conversationId} · ${c.clientTimeZone}`),
        h('span', { class: `tag tag-${c.status}`, 'data-testid': 'conversation-status' }, c.status))));
    return h('li', {}, button);
  }

  function listButtons() {
    return Array.from(el.list.querySelectorAll('.conv-item'));
  }

  // Arrow keys walk the list; Enter and Space open (they are buttons).
  el.list.addEventListener('keydown', (event) => {
    const buttons = listButtons();
    const index = buttons.indexOf(document.activeElement);
    if (index < 0) return;
    let next = null;
    if (event.key === 'ArrowDown') next = buttons[Math.min(buttons.length - 1, index + 1)];
    else if (event.key === 'ArrowUp') next = buttons[Math.max(0, index - 1)];
    else if (event.key === 'Home') next = buttons[0];
    else if (event.key === 'End') next = buttons[buttons.length - 1];
    if (next) {
      event.preventDefault();
      next.focus();
    }
  });

  for (const radio of el.filter) {
    radio.addEventListener('change', () => {
      if (!radio.checked) return;
      state.filter = radio.value;
      state.conversations = [];
      state.nextCursor = null;
      state.listLoaded = false;
      showNotice(el.listInfo, '');
      el.list.replaceChildren();
      el.listEmpty.hidden = true;
      el.loadMore.hidden = true;
      loadList();
    });
  }

  el.loadMore.addEventListener('click', loadMore);

  el.importDemo.addEventListener('click', async () => {
    el.importDemo.disabled = true;
    el.importDemo.textContent = 'Loading…';
    showNotice(el.listError, '');
    try {
      await api('GET', '/import_data/');
      showNotice(el.listInfo, 'Demo data loaded. Pick a conversation to start.');
      setTimeout(() => showNotice(el.listInfo, ''), 8000);
      await loadList();
      const first = listButtons()[0];
      if (first) first.focus();
    } catch (error) {
      if (error.status !== 401) showNotice(el.listError, `Could not load the demo data: ${error.message}`);
    } finally {
      el.importDemo.disabled = false;
      el.importDemo.textContent = 'Load demo data';
    }
  });

  // ---------------------------------------------------------------- one conversation

  function route() {
    const match = /^#\/conversation\/(\d+)$/.exec(location.hash);
    const id = match ? Number(match[1]) : null;
    if (id === state.selectedId) return;
    if (state.selectedId !== null) state.drafts.set(state.selectedId, el.input.value);
    state.selectedId = id;
    state.conversation = null;
    state.scrollToEnd = true;
    el.chats.replaceChildren();
    showNotice(el.convError, '');
    showNotice(el.sendError, '');
    el.layout.dataset.view = id === null ? 'list' : 'conversation';
    if (id !== null) showNotice(el.listInfo, '');
    el.placeholder.hidden = id !== null;
    el.pane.hidden = true;
    el.input.value = id === null ? '' : state.drafts.get(id) || '';
    updateCount();
    setPreview('idle');
    state.idempotencyKey = null;
    renderList();
    if (id !== null) loadConversation({ focus: true });
  }

  function selectConversation(id) {
    const hash = `#/conversation/${id}`;
    if (location.hash === hash) {
      el.title.focus();
      return;
    }
    location.hash = hash;
  }

  function closeConversation() {
    const id = state.selectedId;
    if (id === null) return;
    location.hash = '#/';
    // Show the list now (hashchange comes later): a hidden element cannot take focus.
    route();
    const item = el.list.querySelector(`[data-testid="conversation-${id}"]`);
    (item || listButtons()[0] || el.list).focus();
  }

  async function loadConversation({ focus = false } = {}) {
    const id = state.selectedId;
    if (id === null) return;
    const seq = ++state.convSeq;
    try {
      const data = await api('GET', `/conversation/${id}/?limit=${CHATS_SHOWN}`);
      if (seq !== state.convSeq || id !== state.selectedId) return;
      showNotice(el.convError, '');
      applyConversation(data);
      if (focus) el.title.focus();
    } catch (error) {
      if (seq !== state.convSeq || id !== state.selectedId || error.status === 401) return;
      if (error.status === 404 || error.status === 400) {
        state.conversation = null;
        el.pane.hidden = true;
        el.placeholder.hidden = false;
        el.placeholder.replaceChildren(
          h('strong', {}, `Conversation ${id} was not found`),
          h('span', {}, 'It may have been removed. Pick another one from the list.'));
      } else {
        showNotice(el.convError, `Could not refresh this conversation: ${error.message}`);
      }
    }
  }

  function applyConversation(data) {
    const first = state.conversation === null;
    state.conversation = data;
    el.placeholder.hidden = true;
    el.pane.hidden = false;
    renderHeader();
    renderChats();
    loadFailureDetails();
    // A draft kept from an earlier visit gets its preview once the conversation is known.
    if (first && el.input.value.trim()) schedulePreview();
  }

  function renderSubtitle(c) {
    const zone = c.clientTimeZone || 'UTC';
    const about = `Conversation #${c.conversationId} · ${c.operatorGroup || 'operator'} · `;
    const local = `${zone}, ${clock(new Date(), zone)} local time`;
    if (el.sub.textContent !== about + local) {
      el.sub.replaceChildren(h('span', { class: 'sub-about' }, about), h('span', { 'data-testid': 'client-local-time' }, local));
    }
  }

  function renderHeader() {
    const c = state.conversation;
    const name = clientName(c);
    if (el.title.textContent !== name) el.title.textContent = name;
    renderSubtitle(c);
    el.status.textContent = c.status;
    el.status.className = `status status-badge-${c.status}`;
    const resolved = c.status === 'resolved';
    el.resolve.textContent = resolved ? 'Reopen' : 'Resolve';
    el.resolve.setAttribute('aria-label', resolved ? `Reopen the conversation with ${name}` : `Resolve the conversation with ${name}`);
    const me = state.me || {};
    // An operator writes only where it is assigned; a manager reassigns.
    const notMine = me.role === 'operator' && me.operatorId !== c.operatorId;
    const mine = me.operatorId === c.operatorId;
    el.composeTo.textContent = `Message to ${name}`;
    el.composeAs.textContent = mine ? 'as you' : `as ${operatorName(c.operatorId)}`;
    el.resolvedNote.hidden = !resolved;
    el.assignedNote.hidden = resolved || !notMine;
    el.assignedNote.textContent = notMine
      ? `Assigned to ${operatorName(c.operatorId)}: only they can write here. A manager can reassign it to you.`
      : '';
    el.compose.dataset.resolved = String(resolved);
    el.compose.dataset.readonly = String(notMine);
    const closed = resolved || notMine;
    el.input.disabled = closed;
    el.send.disabled = closed || state.sending;
    for (const button of el.compose.querySelectorAll('[data-insert]')) button.disabled = closed;
    renderReassign(c);
  }

  function mayReassign() {
    return !!state.me && ['admin', 'manager', 'integration'].includes(state.me.role);
  }

  function renderReassign(c) {
    const operators = state.operators.get(c.storeId);
    if (!mayReassign()) {
      el.reassign.hidden = true;
      return;
    }
    if (!operators) {
      el.reassign.hidden = true;
      loadOperatorsOnce(c.storeId);
      return;
    }
    const select = el.reassignSelect;
    const options = operators.map((o) => [String(o.operatorId), `${o.name}${o.role === 'manager' ? ' (manager)' : ''}`]);
    if (!options.some(([id]) => id === String(c.operatorId))) options.push([String(c.operatorId), operatorName(c.operatorId)]);
    const key = JSON.stringify(options);
    if (select.dataset.key !== key) {
      select.replaceChildren(...options.map(([id, label]) => h('option', { value: id, 'data-testid': `reassign-to-${id}` }, label)));
      select.dataset.key = key;
    }
    // Not while the manager is choosing.
    if (document.activeElement !== select || select.dataset.conversation !== String(c.conversationId)) {
      select.value = String(c.operatorId);
    }
    select.dataset.conversation = String(c.conversationId);
    select.setAttribute('aria-label', `Assign the conversation with ${clientName(c)} to`);
    el.reassign.hidden = false;
  }

  const operatorsAsked = new Set();
  function loadOperatorsOnce(store) {
    if (operatorsAsked.has(store)) return;
    operatorsAsked.add(store);
    loadOperators(store).finally(() => {
      if (!state.operators.has(store)) operatorsAsked.delete(store);
    });
  }

  el.reassignSelect.addEventListener('change', async () => {
    const c = state.conversation;
    if (!c) return;
    const operatorId = Number(el.reassignSelect.value);
    if (operatorId === c.operatorId) return;
    el.reassignSelect.disabled = true;
    showNotice(el.convError, '');
    try {
      const data = await api('PATCH', `/conversation/${c.conversationId}/`, { operatorId });
      if (data && data.conversationId === state.selectedId) {
        state.convSeq += 1;
        applyConversation(data);
      }
      await loadList();
    } catch (error) {
      el.reassignSelect.value = String(c.operatorId);
      if (error.status !== 401) showNotice(el.convError, `Could not reassign: ${error.message}`);
    } finally {
      el.reassignSelect.disabled = false;
    }
  });

  function renderChats() {
    const c = state.conversation;
    const box = el.chatScroll;
    const zone = c.clientTimeZone;
    // Each chat knows whether it opens a new day or a new speaker, so it can draw the day
    // line and the author's name above itself.
    const rows = [];
    let previous = null;
    for (const chat of c.chats || []) {
      const day = dayLabel(chat.createdAt, zone);
      const newDay = !previous || previous.day !== day;
      rows.push({ chat, day: newDay ? day : null, author: newDay || previous.chat.userId !== chat.userId });
      previous = { chat, day };
    }
    reconcile(
      el.chats,
      rows,
      (row) => row.chat.chatId,
      (row) => JSON.stringify([row, zone, c.clientId, detailKey(row.chat), state.me && state.me.operatorId]),
      (row) => renderChat(row, c),
    );
    if (state.scrollToEnd || state.atEnd) {
      box.scrollTop = box.scrollHeight;
      state.scrollToEnd = false;
      state.atEnd = true;
    }
  }

  // Whoever reads the newest messages keeps seeing them as chats arrive or the screen turns.
  el.chatScroll.addEventListener('scroll', () => {
    const box = el.chatScroll;
    state.atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 48;
  });
  new ResizeObserver(() => {
    if (state.atEnd) el.chatScroll.scrollTop = el.chatScroll.scrollHeight;
  }).observe(el.chatScroll);

  function detailKey(chat) {
    const detail = state.details.get(chat.chatId);
    // A waiting chat's reason is filled in where it stands (`showWaitReason`): re-rendering
    // would take the Cancel button from under the operator's pointer.
    if (chat.status === 'new') return null;
    return fresh(detail, chat) ? [detail.lastError, detail.renderedText, detail.attempts] : null;
  }

  // A detail still describes the chat: same status, same send time.
  function fresh(detail, chat) {
    return !!detail && detail.status === chat.status && detail.sendAt === chat.sendAt;
  }

  function dayLabel(iso, zone) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return '';
    const days = dayNumber(localParts(new Date(), zone)) - dayNumber(localParts(date, zone));
    if (days === 0) return 'Today';
    if (days === 1) return 'Yesterday';
    return formatter(zone, { weekday: 'long', month: 'long', day: 'numeric', year: 'numeric' }).format(date);
  }

  // A time of the chat's day: "15:25", or with its date when it falls on another day.
  function timeOnDay(iso, dayIso, zone) {
    const date = new Date(iso);
    const parts = localParts(date, zone);
    if (dayNumber(parts) === dayNumber(localParts(new Date(dayIso), zone))) return `${parts.hour}:${parts.minute}`;
    return stamp(iso, zone);
  }

  function renderChat(row, c) {
    const { chat } = row;
    const zone = c.clientTimeZone;
    // Whoever is not the client is an operator: the conversation's, or one before a reassignment.
    const fromOperator = chat.userId !== c.clientId;
    const own = fromOperator && !!state.me && state.me.operatorId === chat.userId;
    const author = fromOperator ? authorLabel(chat.userId) : clientName(c);
    const created = timeOnDay(chat.createdAt, chat.createdAt, zone);
    const meta = [
      h('span', { class: `status status-badge-${chat.status}`, 'data-testid': 'chat-status' }, chat.status),
      h('time', { datetime: chat.createdAt, title: `${fromOperator ? 'written' : 'received'} ${chat.createdAt}`, 'data-testid': 'chat-created' }, created),
    ];
    const actions = [];
    if (chat.status === 'new' && chat.sendAt) {
      meta.push(h('span', { class: 'sep', 'aria-hidden': 'true' }, '·'));
      meta.push(h('span', {
        class: 'send-when',
        'data-testid': 'chat-send-at',
        title: `sendAt ${chat.sendAt}`,
        dataset: { sendAt: chat.sendAt, zone },
      }, sendPhrase(chat.sendAt, zone)));
      actions.push(h('button', {
        type: 'button',
        class: 'btn btn-small btn-danger',
        'data-testid': 'cancel-chat',
        'aria-label': `Cancel scheduled message ${chat.chatId}`,
        onclick: (event) => cancelChat(chat.chatId, event.currentTarget),
      }, 'Cancel'));
    } else if (chat.status === 'sent' && chat.sentAt) {
      const sent = timeOnDay(chat.sentAt, chat.createdAt, zone);
      // Sent the minute it was written: the badge says it all.
      if (sent !== created) {
        meta.push(h('span', { class: 'sep', 'aria-hidden': 'true' }, '·'));
        meta.push(h('time', { datetime: chat.sentAt, 'data-testid': 'chat-sent-at', title: `sent ${chat.sentAt}` }, `sent ${sent}`));
      }
    } else if (chat.status === 'sending') {
      meta.push(h('span', { class: 'sep', 'aria-hidden': 'true' }, '·'));
      meta.push(h('span', {}, 'going out now'));
    } else if (chat.status === 'suppressed') {
      meta.push(h('span', { class: 'sep', 'aria-hidden': 'true' }, '·'));
      meta.push(h('span', {}, 'not sent: the shopper unsubscribed'));
    } else if (chat.status === 'cancelled' && chat.sendAt) {
      meta.push(h('span', { class: 'sep', 'aria-hidden': 'true' }, '·'));
      meta.push(h('span', {}, `was due ${timeOnDay(chat.sendAt, chat.createdAt, zone)}`));
    }
    const item = h('article', {
      class: `chat ${fromOperator ? 'from-operator' : 'from-client'} status-${chat.status}`,
      'data-testid': `chat-${chat.chatId}`,
      'data-status': chat.status,
      'data-author': String(chat.userId),
      'aria-label': `${author}, ${chat.status}, ${created}`,
    },
    row.author ? h('span', { class: 'chat-author', 'data-testid': 'chat-author', dataset: { operator: fromOperator ? String(chat.userId) : '' } }, author) : null,
    h('div', { class: 'bubble', 'data-testid': 'chat-payload' }, payloadNodes(chat.payload)),
    h('div', { class: 'chat-meta' }, meta, actions));
    if (chat.status === 'failed') item.append(renderFailure(chat));
    if (chat.status === 'new') {
      const reason = h('span', { class: 'wait-reason', 'data-testid': 'chat-wait-reason', hidden: true });
      item.append(reason);
      showWaitReason(reason, chat, c);
    }
    return h('li', {}, row.day ? h('p', { class: 'day', role: 'separator' }, row.day) : null, item);
  }

  function authorLabel(id) {
    const own = !!state.me && state.me.operatorId === id;
    return `${operatorName(id)}${own ? ' (you)' : ''}`;
  }

  // Operators' names arrive after the chats: set where they stand.
  function refreshAuthors() {
    for (const span of el.chats.querySelectorAll('.chat-author[data-operator]')) {
      const id = Number(span.dataset.operator);
      if (!id) continue;
      const label = authorLabel(id);
      if (span.textContent !== label) span.textContent = label;
    }
  }

  function showWaitReason(node, chat, c) {
    const detail = state.details.get(chat.chatId);
    const why = fresh(detail, chat) ? waitPhrase(detail.waitingFor, chat.sendAt, c.clientTimeZone, c) : '';
    if (node.textContent !== why) node.textContent = why;
    node.hidden = !why;
  }

  function renderFailure(chat) {
    const detail = state.details.get(chat.chatId);
    const known = fresh(detail, chat);
    const reason = known ? detail.lastError || 'no reason recorded' : 'loading the reason…';
    return h('div', { class: 'failure', 'data-testid': 'chat-failure' },
      h('span', {}, 'Not delivered: ', h('code', { 'data-testid': 'chat-last-error' }, reason),
        known && detail.attempts ? ` (${detail.attempts} attempt${detail.attempts === 1 ? '' : 's'})` : ''),
      h('button', {
        type: 'button',
        class: 'btn btn-small',
        'data-testid': 'retry-chat',
        'aria-label': `Retry message ${chat.chatId}`,
        onclick: (event) => retryChat(chat.chatId, event.currentTarget),
      }, 'Retry'));
  }

  // A failed message's reason and why a waiting one waits live on GET /chat/{id}/;
  // fetched once per status and send time.
  function loadFailureDetails() {
    const c = state.conversation;
    for (const chat of c.chats || []) {
      const wanted = chat.status === 'failed' || chat.status === 'new';
      if (!wanted || state.detailsLoading.has(chat.chatId)) continue;
      if (fresh(state.details.get(chat.chatId), chat)) continue;
      state.detailsLoading.add(chat.chatId);
      api('GET', `/chat/${chat.chatId}/`)
        .then((data) => {
          state.details.set(chat.chatId, data);
          if (!state.conversation || state.conversation.conversationId !== c.conversationId) return;
          const reason = el.chats.querySelector(`[data-testid="chat-${chat.chatId}"] [data-testid=chat-wait-reason]`);
          if (chat.status === 'new' && reason) showWaitReason(reason, chat, state.conversation);
          else renderChats();
        })
        .catch(() => { /* the next refresh tries again */ })
        .finally(() => state.detailsLoading.delete(chat.chatId));
    }
  }

  async function chatAction(button, run, failure) {
    button.disabled = true;
    showNotice(el.convError, '');
    try {
      await run();
      await Promise.all([loadConversation(), loadList()]);
    } catch (error) {
      if (error.status !== 401) showNotice(el.convError, `${failure}: ${error.message}`);
      button.disabled = false;
    }
  }

  function cancelChat(id, button) {
    return chatAction(button, () => api('DELETE', `/chat/${id}/`), 'Could not cancel the message');
  }

  function retryChat(id, button) {
    state.details.delete(id);
    return chatAction(button, () => api('POST', `/chat/${id}/retry/`), 'Could not retry the message');
  }

  el.resolve.addEventListener('click', async () => {
    const c = state.conversation;
    if (!c) return;
    const status = c.status === 'resolved' ? 'open' : 'resolved';
    el.resolve.disabled = true;
    showNotice(el.convError, '');
    try {
      const data = await api('PATCH', `/conversation/${c.conversationId}/`, { status });
      if (data && data.conversationId === state.selectedId) {
        state.convSeq += 1;
        applyConversation(data);
      }
      await loadList();
    } catch (error) {
      if (error.status !== 401) showNotice(el.convError, `Could not change the status: ${error.message}`);
    } finally {
      el.resolve.disabled = false;
    }
  });

  el.back.addEventListener('click', closeConversation);

  // ---------------------------------------------------------------- compose

  // "Send later" is picked in the operator's own time; the API takes an instant.
  function sendLaterIso() {
    const value = el.sendLater.value;
    if (!value) return null;
    const at = new Date(value);
    return Number.isNaN(at.getTime()) ? null : at.toISOString();
  }

  function chatBody() {
    const c = state.conversation;
    const chat = { payload: el.input.value };
    if (!writesAsItself()) chat.userId = c.operatorId;
    const later = sendLaterIso();
    if (later) chat.sendAt = later;
    return { conversationId: c.conversationId, chat };
  }

  // Why a message waits, in words (SPEC §11's waitingFor).
  const WAIT_REASONS = {
    active_hours: (c) => `${clientName(c)} is outside the store's hours`,
    closure: () => 'the store is closed',
    send_at: () => 'you asked to send it later',
    frequency_cap: (c) => `${clientName(c)} had as many emails as the store allows for now`,
  };

  // "waits for 09:00 Tue in Asia/Tokyo: the store is closed", in the client's local time.
  function waitPhrase(waitingFor, sendAtIso, zone, c) {
    const reason = WAIT_REASONS[waitingFor];
    if (!reason || !sendAtIso) return '';
    const at = new Date(sendAtIso);
    if (Number.isNaN(at.getTime())) return '';
    const day = formatter(zone, { weekday: 'short' }).format(at);
    return `waits for ${clock(at, zone)} ${day} in ${zone || 'UTC'}: ${reason(c)}`;
  }

  function updateCount() {
    const n = Array.from(el.input.value).length;
    el.charCount.textContent = `${n} character${n === 1 ? '' : 's'}`;
  }

  function setPreview(kind, ...children) {
    el.preview.dataset.state = kind;
    if (kind === 'idle') {
      children = [h('span', { class: 'preview-head' }, 'Preview'),
        h('span', { class: 'preview-hint' }, 'What the shopper receives appears here as you type.')];
    }
    el.preview.replaceChildren(...children);
    el.input.setAttribute('aria-invalid', kind === 'error' ? 'true' : 'false');
  }

  // The text with the offending character marked; positions count characters, not UTF-16 units.
  function mirror(text, position) {
    const chars = Array.from(text);
    const at = Math.min(Math.max(position, 0), chars.length);
    const shown = chars[at];
    let mark;
    if (shown === undefined) mark = '\u2423';
    else if (shown === '\n') mark = '\u21b5\n';
    else if (shown === '\t') mark = '\u21e5';
    else if (shown === ' ') mark = '\u2423';
    else mark = shown;
    return h('pre', { class: 'mirror', 'data-testid': 'preview-mirror', 'aria-hidden': 'true' },
      chars.slice(0, at).join(''),
      h('mark', { 'data-testid': 'preview-error-mark', title: `position ${position}` }, mark),
      chars.slice(at + 1).join(''));
  }

  function showValidationError(error, text) {
    const nodes = [h('span', { class: 'preview-head' }, 'Cannot be sent'),
      h('span', { class: 'preview-error', 'data-testid': 'preview-error' }, error.message)];
    if (error.position !== null && text) nodes.push(mirror(text, error.position));
    setPreview('error', ...nodes);
  }

  function schedulePreview() {
    clearTimeout(state.previewTimer);
    state.previewTimer = setTimeout(runPreview, PREVIEW_DELAY_MS);
  }

  async function runPreview() {
    const c = state.conversation;
    const text = el.input.value;
    const seq = ++state.previewSeq;
    if (!c || c.status === 'resolved' || !text.trim()) {
      setPreview('idle');
      return;
    }
    try {
      const data = await api('POST', '/chat/preview/', chatBody());
      if (seq !== state.previewSeq) return;
      const zone = c.clientTimeZone;
      setPreview('ok',
        h('span', { class: 'preview-head' }, `Preview for ${clientName(c)}`),
        h('span', { class: 'preview-text', 'data-testid': 'preview-text' }, data.renderedText),
        h('span', {
          class: 'send-when',
          'data-testid': 'preview-send-at',
          dataset: { sendAt: data.sendAt, zone, local: data.clientLocalSendAt || '' },
        }, sendPhrase(data.sendAt, zone, data.clientLocalSendAt)),
        h('span', { class: 'wait-reason', 'data-testid': 'preview-wait-reason' },
          waitPhrase(data.waitingFor, data.sendAt, zone, c)));
    } catch (error) {
      if (seq !== state.previewSeq || error.status === 401) return;
      if (error.status === 0) setPreview('error', h('span', { class: 'preview-error', 'data-testid': 'preview-error' }, 'Preview unavailable: cannot reach the server.'));
      else showValidationError(error, text);
    }
  }

  function randomKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  async function send() {
    const c = state.conversation;
    if (!c || state.sending || c.status === 'resolved') return;
    state.sending = true;
    el.send.disabled = true;
    el.send.textContent = 'Sending…';
    showNotice(el.sendError, '');
    const text = el.input.value;
    // One key per message written: a resend after a lost answer is not stored twice.
    state.idempotencyKey = state.idempotencyKey || randomKey();
    try {
      await api('POST', '/chat/', chatBody(), { 'Idempotency-Key': state.idempotencyKey });
      state.idempotencyKey = null;
      if (el.input.value === text) el.input.value = '';
      el.sendLater.value = '';
      state.drafts.delete(c.conversationId);
      updateCount();
      state.previewSeq += 1;
      setPreview('idle');
      state.scrollToEnd = true;
      await Promise.all([loadConversation(), loadList()]);
    } catch (error) {
      if (error.status !== 401) {
        showNotice(el.sendError, `Not sent: ${error.message}`);
        if (error.position !== null) showValidationError(error, text);
      }
      if (error.status !== 0) state.idempotencyKey = null;
    } finally {
      state.sending = false;
      el.send.textContent = 'Send';
      el.send.disabled = !!(state.conversation && state.conversation.status === 'resolved');
    }
  }

  el.input.addEventListener('input', () => {
    updateCount();
    showNotice(el.sendError, '');
    state.idempotencyKey = null;
    if (state.selectedId !== null) state.drafts.set(state.selectedId, el.input.value);
    schedulePreview();
  });

  el.sendLater.addEventListener('change', () => {
    state.idempotencyKey = null;
    schedulePreview();
  });

  el.input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      send();
    }
  });

  el.compose.addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });

  for (const button of el.compose.querySelectorAll('[data-insert]')) {
    button.addEventListener('click', () => {
      el.input.focus();
      el.input.setRangeText(button.dataset.insert, el.input.selectionStart, el.input.selectionEnd, 'end');
      el.input.dispatchEvent(new Event('input'));
    });
  }

  // Esc leaves the conversation for the list (on a phone: goes back).
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape' || !el.signin.hidden || event.defaultPrevented) return;
    if (state.selectedId !== null) {
      event.preventDefault();
      closeConversation();
    }
  });

  // ---------------------------------------------------------------- live events

  // The console follows `GET /events/` (Server-Sent Events, SPEC §10) instead of polling:
  // each event refreshes what it touches, a moment later, so a burst of events costs one
  // refresh. It reads the stream with fetch rather than EventSource, so that a bearer
  // token works as well as the session cookie. A dropped stream is reopened after a
  // growing pause with `Last-Event-ID`, and every (re)opening refreshes everything once:
  // that covers what changed before the stream was open. The only timer left redraws
  // relative times ("in 5 minutes"), and a slow full refresh catches what has no event
  // (a message's wait moved by the delivery rules).
  const EVENT_SETTLE_MS = 120;
  const TICK_MS = 15000;
  const RESYNC_MS = 60000;
  const STREAM_RETRY_MS = [500, 1000, 2000, 5000, 10000];

  function stopFollowing() {
    state.streamGen += 1;
    if (state.stream) state.stream.abort();
    state.stream = null;
    clearTimeout(state.streamTimer);
    clearTimeout(state.refreshTimer);
    clearTimeout(state.pollTimer);
  }

  function follow() {
    stopFollowing();
    if (!state.me) return;
    state.streamFailures = 0;
    openStream(state.streamGen);
    tick();
  }

  async function openStream(gen) {
    const controller = new AbortController();
    state.stream = controller;
    const headers = { Accept: 'text/event-stream' };
    const bearer = token();
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    if (state.lastEventId) headers['Last-Event-ID'] = state.lastEventId;
    let response;
    try {
      response = await fetch('/events/', { headers, cache: 'no-store', signal: controller.signal });
    } catch (_) {
      return streamLost(gen);
    }
    if (gen !== state.streamGen) return;
    if (response.status === 401) {
      showSignIn(bearer !== '' ? 'token' : state.me && state.me.via === 'session' ? 'session' : null);
      return;
    }
    if (!response.ok || !response.body) return streamLost(gen);
    state.streamFailures = 0;
    setConnection('live');
    el.layout.dataset.stream = 'open';
    refreshSoon({ list: true, conversation: true });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let pending = { id: null, type: 'message', data: [] };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || gen !== state.streamGen) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, end).replace(/\r$/, '');
          buffer = buffer.slice(end + 1);
          if (line === '') {
            if (pending.data.length || pending.id !== null) onStreamEvent(pending);
            pending = { id: null, type: 'message', data: [] };
          } else if (!line.startsWith(':')) {
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'id') pending.id = text;
            else if (field === 'event') pending.type = text;
            else if (field === 'data') pending.data.push(text);
          }
        }
      }
    } catch (_) {
      // Aborted, or the connection dropped: either way, the stream is over.
    }
    streamLost(gen);
  }

  function streamLost(gen) {
    if (gen !== state.streamGen || !state.me) return;
    delete el.layout.dataset.stream;
    state.stream = null;
    const wait = STREAM_RETRY_MS[Math.min(state.streamFailures, STREAM_RETRY_MS.length - 1)];
    state.streamFailures += 1;
    if (state.streamFailures > 1) setConnection('offline');
    state.streamTimer = setTimeout(() => {
      if (gen === state.streamGen && state.me) openStream(gen);
    }, wait);
  }

  function onStreamEvent({ id, type, data }) {
    if (id) state.lastEventId = id;
    if (type === 'cutoff') return; // the stream ends now; it reopens from this id
    if (type === 'reset') {
      refreshSoon({ list: true, conversation: true });
      return;
    }
    let event = null;
    try { event = JSON.parse(data.join('\n')); } catch (_) { event = null; }
    const thing = (event && event.data) || {};
    const conversationId = Number.isInteger(thing.conversationId) ? thing.conversationId : null;
    refreshSoon({
      list: true,
      conversation: conversationId === null || conversationId === state.selectedId,
    });
  }

  function refreshSoon({ list, conversation }) {
    state.dirtyList = state.dirtyList || list;
    state.dirtyConversation = state.dirtyConversation || conversation;
    if (state.refreshTimer) return;
    state.refreshTimer = setTimeout(refreshNow, EVENT_SETTLE_MS);
  }

  async function refreshNow() {
    state.refreshTimer = 0;
    if (!state.me || document.hidden) return;
    const work = [];
    if (state.dirtyList) work.push(loadList());
    if (state.dirtyConversation) work.push(loadConversation());
    state.dirtyList = false;
    state.dirtyConversation = false;
    await Promise.allSettled(work);
  }

  // Relative times, and now and then a full refresh for what no event reports.
  function tick() {
    clearTimeout(state.pollTimer);
    if (!state.me) return;
    refreshRelativeTimes();
    if (Date.now() - state.resyncedAt >= RESYNC_MS) {
      state.resyncedAt = Date.now();
      refreshSoon({ list: true, conversation: true });
    }
    state.pollTimer = setTimeout(tick, TICK_MS);
  }

  // Drops the stream as a lost connection would (the browser tests use it to see the
  // console reopen it).
  window.addEventListener('cartloop:drop-stream', () => {
    if (state.stream) state.stream.abort();
  });

  document.addEventListener('visibilitychange', () => {
    // Events that came while hidden were noted but not fetched: fetch them now.
    if (!document.hidden && state.me) refreshSoon({ list: true, conversation: true });
  });

  window.addEventListener('hashchange', () => {
    if (state.me) route();
  });

  setPreview('idle');
  connect();
})();
