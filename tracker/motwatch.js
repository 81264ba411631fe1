/*
 * motwatch browser tracker: records page views (with first contentful paint and
 * declared HTTP status), time on page, link clicks and checkout, order and survey
 * moments, and posts them to the motwatch collector as Segment-format batches
 * (POST <collector>/v1/batch, text/plain JSON, write key in the body).
 *
 * Load it with one line:
 *   <script src="https://collector.example/motwatch.js" data-write-key="KEY" async></script>
 * Batches go to v1/batch beside the script (its origin and folder), or to the URL
 * that data-endpoint names. Calls made before it loaded go in window.motwatchQueue as
 * arrays, e.g. motwatchQueue.push(['identify', 'customer-42']), and are replayed.
 * Plain ES2017, no dependencies; `npm run size` in tracker/ checks the 5 KB budget.
 */
((w, d) => {
  if (w.motwatch && w.motwatch.version) return;

  const VERSION = '1.0.0';
  const SESSION_MS = 30 * 60 * 1000; // a visit ends after 30 minutes without an event
  const FLUSH_MS = 1000;             // a queued event waits at most this long before a send
  const FLUSH_AT = 10;               // ... or until this many are queued
  const BATCH_CHARS = 32000;         // one batch stays well under the keepalive and beacon limits
  const MAX_QUEUE = 500;             // oldest events are dropped past this many unsent
  const LOCK_MS = 30000;             // an event in flight is not sent again for this long
  const FCP_WAIT_MS = 3000;          // the page view waits at most this long for first paint
  const CATEGORY = /^(home|content|reviews|product|cart|checkout|account|other)$/;
  const HELPERS = {
    checkoutStarted: 'checkout_started', checkoutStep: 'checkout_step', order: 'order_completed',
    paymentFailed: 'payment_failed', survey: 'survey_response'
  };

  const loc = location;
  const nav = navigator;
  const perf = performance;
  const on = (target, type, fn, capture) => target.addEventListener(type, fn, capture);
  const now = () => Date.now();
  const iso = () => new Date().toISOString();
  const warn = (...args) => console.warn('motwatch:', ...args);

  const script = d.currentScript || d.querySelector('script[data-write-key]') || {};
  const data = script.dataset || {};
  const writeKey = data.writeKey;
  const endpoint = data.endpoint || new URL('v1/batch', script.src || loc.href).href;
  const memory = {};
  let store;
  try { store = localStorage; } catch (e) { /* blocked: cookies and memory only */ }
  let timer = 0;
  let failures;

  // First-party storage: localStorage, ids mirrored to a cookie, memory as a last resort.
  const get = (key) => {
    let value;
    try { value = store.getItem(key); } catch (e) { /* no storage */ }
    if (value == null) {
      const m = d.cookie.match('(^|; )' + key + '=([^;]*)');
      value = m ? decodeURIComponent(m[2]) : memory[key];
    }
    return value;
  };

  const set = (key, value, cookie) => {
    memory[key] = value;
    try {
      if (value == null) store.removeItem(key); else store.setItem(key, value);
    } catch (e) { /* full or blocked: memory and the cookie still hold it */ }
    if (cookie) {
      d.cookie = key + '=' + (value == null ? ';max-age=0' : encodeURIComponent(value) + ';max-age=31536000') +
        ';path=/;samesite=lax';
    }
  };

  // A random UUID: randomUUID exists only on secure origins; a blob URL ends in one everywhere.
  const uuid = () => {
    if (w.crypto.randomUUID) return w.crypto.randomUUID();
    const url = URL.createObjectURL(new Blob());
    URL.revokeObjectURL(url);
    return url.slice(-36);
  };

  const anonymousId = () => {
    let id = get('mw_aid');
    if (!id) set('mw_aid', id = uuid(), 1);
    return id;
  };

  // The visit's id, renewed after SESSION_MS without an event; every event counts as activity.
  const sessionId = () => {
    const [old, last] = (get('mw_sid') || '').split('.');
    const id = last && now() - last < SESSION_MS ? old : uuid();
    set('mw_sid', id + '.' + now(), 1);
    return id;
  };

  const meta = (name) => {
    const el = d.querySelector('meta[name="motwatch:' + name + '"]');
    return el ? el.content.trim() : '';
  };

  // What the page declares about itself, carried by its page views and page exits.
  const declared = (properties) => {
    const p = Object.assign({ url: loc.href }, properties);
    const category = meta('page-category').toLowerCase();
    const product = meta('product-id');
    if (category) p.page_category = CATEGORY.test(category) ? category : 'other';
    if (product) p.product_id = product;
    return p;
  };

  // A Segment message of the given type, stamped with ids, time and context.
  const message = (type, fields, channel) => {
    const m = Object.assign({
      type,
      messageId: uuid(),
      anonymousId: anonymousId(),
      timestamp: iso(),
      context: {
        page: { url: loc.href, referrer: d.referrer, title: d.title },
        library: { name: 'motwatch.js', version: VERSION },
        sessionId: sessionId(),
        channel: channel || 'web'
      }
    }, fields);
    const userId = get('mw_uid');
    if (userId && !m.userId) m.userId = userId;
    return m;
  };

  // The persisted queue, [{m: message, l: locked-until ms}], shared by the site's tabs.
  const load = () => {
    try { return JSON.parse(store.getItem('mw_q')) || []; } catch (e) { return memory.q || []; }
  };

  const save = (queue) => {
    memory.q = queue;
    try { store.setItem('mw_q', JSON.stringify(queue)); } catch (e) { /* memory holds it */ }
  };

  const enqueue = (m) => {
    const queue = load();
    queue.push({ m });
    if (queue.length > MAX_QUEUE) warn('queue full, dropped', queue.splice(0, queue.length - MAX_QUEUE).length);
    save(queue);
    schedule(queue.length < FLUSH_AT || failures ? FLUSH_MS : 0);
  };

  // Apply a send's outcome to the stored queue: drop the batch's events, or lock them until `until`.
  const update = (batch, done, until) => {
    const ids = {};
    batch.forEach((e) => { ids[e.m.messageId] = 1; });
    save(load().filter((e) => !ids[e.m.messageId] || (e.l = until, !done)));
  };

  const schedule = (ms) => {
    if (timer) {
      if (ms) return;
      clearTimeout(timer);
    }
    timer = setTimeout(() => { timer = 0; flush(); }, ms);
  };

  // The next batch of events neither locked nor already sent by this page, at most BATCH_CHARS of JSON.
  const take = (queue, time) => {
    const batch = [];
    let size = 0;
    for (const e of queue) {
      if (e.l > time || e.s) continue;
      size += JSON.stringify(e.m).length;
      if (batch.length && size > BATCH_CHARS) break;
      batch.push(e);
    }
    return batch;
  };

  const body = (batch) => JSON.stringify({ batch: batch.map((e) => e.m), sentAt: iso(), writeKey });

  /*
   * Send queued events. With `leaving` set (page hidden or a link followed) every batch
   * goes by sendBeacon and, while the collector has been answering, leaves the queue;
   * after a failure it stays queued so that a later page sends it again (the collector
   * drops repeats by messageId). Otherwise one batch goes by fetch with keepalive and
   * leaves the queue on 2xx, or on a 4xx other than 408 and 429 (logged); a network
   * error or any other status keeps it queued and retries with exponential backoff.
   */
  const flush = (leaving) => {
    const queue = load();
    const time = now();
    let batch = take(queue, time);
    if (leaving && nav.sendBeacon) {
      let sent = [];
      while (batch.length) {
        try { if (!nav.sendBeacon(endpoint, body(batch))) break; } catch (e) { break; }
        batch.forEach((e) => { e.s = 1; });
        sent = sent.concat(batch);
        batch = take(queue, time);
      }
      if (!failures) update(sent, 1);
    }
    if (!batch.length) return;
    update(batch, 0, time + LOCK_MS);
    const payload = body(batch);
    fetch(endpoint, { method: 'POST', body: payload, keepalive: payload.length < 60000, credentials: 'omit' })
      .then((r) => {
        const s = r.status;
        if (!r.ok && (s < 400 || s > 499 || s == 408 || s == 429)) throw s;
        if (!r.ok) warn('HTTP', s, 'dropped', batch.length);
        update(batch, 1);
        set('mw_f', failures = 0);
        if (take(load(), now()).length) schedule(0);
      })
      .catch(() => {
        update(batch, 0, 0);
        set('mw_f', ++failures);
        schedule(Math.min(60000, 500 * 2 ** failures * (1 + Math.random())));
      });
  };

  // Send a track event named after its motwatch type; numbers typed into forms become numbers.
  const track = (type, properties, options) => {
    const p = Object.assign({}, properties);
    for (const k of ['value', 'score']) {
      if (typeof p[k] == 'string' && p[k].trim() && !isNaN(p[k])) p[k] = +p[k];
    }
    sendPage();
    const channel = /^(checkout|payment|order)_/.test(type) ? 'checkout' : type == 'survey_response' ? 'survey' : 'web';
    enqueue(message('track', { event: type, properties: p }, (options && options.channel) || channel));
  };

  // The current page view: built once the page's head is parsed, queued once first paint is known.
  let page;
  const sendPage = () => (page || view()).send();

  const view = (properties) => {
    const p = declared(Object.assign({ referrer: d.referrer }, properties));
    const status = parseInt(meta('http-status'), 10);
    if (status >= 100 && status < 600 && !p.http_status) p.http_status = status;
    const m = message('page', { properties: p });
    let queued = false;
    return page = {
      paint: (ms) => { if (!queued) p.load_ms = Math.round(ms); },
      send: () => { if (!queued) { queued = true; enqueue(m); } }
    };
  };

  const firstPaint = () => {
    const current = page;
    try {
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          if (e.name == 'first-contentful-paint') { current.paint(e.startTime); current.send(); }
        }
      }).observe({ type: 'paint', buffered: true });
    } catch (e) { /* no paint timing: the timeout sends the view */ }
    setTimeout(current.send, FCP_WAIT_MS);
  };

  // Time on page: visible milliseconds since navigation start (or since shown again).
  let shownAt = d.visibilityState == 'visible' ? 0 : -1;
  let dwell = 0;

  const leave = () => {
    if (shownAt < 0) return;
    dwell += perf.now() - shownAt;
    shownAt = -1;
    track('page_exit', declared({ dwell_ms: Math.round(dwell) }));
    flush(1);
  };

  const onClick = (e) => {
    const a = e.target.closest && e.target.closest('a[href]');
    if (!a || (e.type == 'auxclick' && e.button != 1)) return;
    // An HTML link's href is absolute; SVG links and javascript:, mailto: and the like are skipped.
    if (!/^https?:/.test(a.href)) return;
    track('link_click', { url: loc.href, target_url: a.href });
    flush(1);
  };

  const api = {
    version: VERSION,
    track,
    page: (properties) => view(properties).send(),
    identify(customerId, traits) {
      if (!customerId) return warn('identify: no customer id');
      set('mw_uid', customerId = String(customerId), 1);
      sendPage();
      enqueue(message('identify', { userId: customerId, traits: traits || {} }));
    },
    reset() { ['mw_uid', 'mw_aid', 'mw_sid'].forEach((k) => set(k, null, 1)); },
    anonymousId,
    flush: () => flush()
  };
  for (const name in HELPERS) api[name] = (p) => track(HELPERS[name], p);
  w.motwatch = api;

  failures = +get('mw_f') || 0;

  on(d, 'visibilitychange', () => {
    if (d.visibilityState != 'visible') leave();
    else if (shownAt < 0) shownAt = perf.now();
  });
  on(w, 'pagehide', leave);
  on(w, 'pageshow', (e) => {
    if (!e.persisted) return; // restored from the back-forward cache: a new view of the page
    dwell = 0;
    shownAt = perf.now();
    view().send();
  });
  on(w, 'online', () => schedule(0));
  on(d, 'click', onClick, true);
  on(d, 'auxclick', onClick, true);

  // Once the page's meta tags are parsed: its view, then the calls made before the tracker
  // loaded, replayed; later pushes run at once.
  const start = () => {
    if (!page) {
      view();
      firstPaint();
    }
    const early = w.motwatchQueue;
    w.motwatchQueue = {
      push: ([name, ...args]) => api[name] ? api[name](...args) : warn('unknown call', name)
    };
    [].concat(early || []).forEach(w.motwatchQueue.push);
    if (load().length) schedule(FLUSH_MS);
  };
  if (d.readyState == 'loading') on(d, 'DOMContentLoaded', start); else start();
})(window, document);
