// The playmark demo page: two simulated players (TV and Phone) on one
// profile, each wired to the SDK's Player, and the profile's
// continue-watching row. Everything goes through /sdk/playmark.js.
import { PlaymarkClient, Player } from '/sdk/playmark.js';

const CATALOGUE = [
  { id: 'big-buck-bunny', title: 'Big Buck Bunny', duration: 596, color: '#5b8c3a' },
  { id: 'sintel', title: 'Sintel', duration: 888, color: '#8a3b2e' },
  { id: 'tears-of-steel', title: 'Tears of Steel', duration: 734, color: '#2f4f6f' },
  { id: 'elephants-dream', title: 'Elephants Dream', duration: 653, color: '#6b4a8a' },
  { id: 'cosmos-laundromat', title: 'Cosmos Laundromat', duration: 724, color: '#b07a1c' },
];
const BY_ID = new Map(CATALOGUE.map((t) => [t.id, t]));
const DEVICE_LABELS = { tv: 'TV', phone: 'Phone' };
const TICK_MS = 1000;
const LOG_LIMIT = 150;

const client = new PlaymarkClient({ baseUrl: '', timeoutMs: 2000, retries: 2 });

const $ = (id) => document.getElementById(id);

/** 754.2 → "12:34"; 3725 → "1:02:05". */
function clock(sec) {
  const s = Math.max(0, Math.floor(sec ?? 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${r}` : `${m}:${r}`;
}

const deviceLabel = (id) => DEVICE_LABELS[id] ?? id ?? 'another device';
const titleOf = (videoId) => BY_ID.get(videoId)?.title ?? videoId;

function profile() {
  return { account_id: $('account').value.trim(), profile_id: $('profile').value.trim() };
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

/** One simulated device: a fake video player driving an SDK Player. */
class Device {
  constructor(id) {
    this.id = id;
    this.article = $(`device-${id}`);
    this.locals = new Map(); // "account|profile|video" -> last local position (s)
    this.player = null;
    this.playerKey = null;
    this.state = 'stopped'; // stopped | starting | prompt | playing | paused
    this.inBackground = false;
    this.speed = 1;
    this.offline = false;
    this.position = 0; // s, while not advancing
    this.basePos = 0;
    this.baseWall = 0;
    this.prompt = null; // {mode: 'resume'|'conflict', ...}
    this.lastLogKey = null;

    const select = $(`title-${id}`);
    for (const t of CATALOGUE) select.add(new Option(`${t.title} (${clock(t.duration)})`, t.id));
    select.value = id === 'tv' ? 'sintel' : 'big-buck-bunny';
    this.titleId = select.value; // the title in the player (the select changes first)

    select.addEventListener('change', () => this.changeTitle());
    $(`play-${id}`).addEventListener('click', () => this.onPlay());
    $(`pause-${id}`).addEventListener('click', () => this.onPause());
    $(`seek-back-${id}`).addEventListener('click', () => this.onSeek(-60));
    $(`seek-fwd-${id}`).addEventListener('click', () => this.onSeek(60));
    $(`stop-${id}`).addEventListener('click', () => this.onStop());
    $(`background-${id}`).addEventListener('click', () => this.onBackground());
    $(`offline-${id}`).addEventListener('change', (e) => this.onOffline(e.target.checked));
    $(`speed-${id}`).addEventListener('change', (e) => {
      this.freeze();
      this.speed = Number(e.target.value) || 1;
    });
    $(`prompt-accept-${id}`).addEventListener('click', () => this.answerPrompt(true));
    $(`prompt-keep-${id}`).addEventListener('click', () => this.answerPrompt(false));

    this.showTitle();
    setInterval(() => this.tick(), TICK_MS);
    setInterval(() => this.render(), 250);
  }

  get title() {
    return BY_ID.get(this.titleId);
  }

  get key() {
    return { ...profile(), video_id: this.title.id };
  }

  get localKey() {
    const k = this.key;
    return `${k.account_id}|${k.profile_id}|${k.video_id}`;
  }

  get advancing() {
    return this.state === 'playing' && !this.inBackground;
  }

  /** The simulated player's position now (s). */
  current() {
    if (!this.advancing) return this.position;
    const pos = this.basePos + ((performance.now() - this.baseWall) / 1000) * this.speed;
    return Math.min(pos, this.title.duration);
  }

  /** Stops the clock at the current position (before any change of state or speed). */
  freeze() {
    this.position = this.current();
    this.basePos = this.position;
    this.baseWall = performance.now();
  }

  moveTo(pos) {
    this.position = Math.max(0, Math.min(pos, this.title.duration));
    this.basePos = this.position;
    this.baseWall = performance.now();
    this.locals.set(this.localKey, this.position);
    this.render();
  }

  setState(state) {
    this.state = state;
    this.article.dataset.state = state;
    $(`state-${this.id}`).textContent = this.inBackground ? `${state} (background)` : state;
    this.render();
  }

  /** The SDK Player for the current account, profile and title (made on first use). */
  ensurePlayer() {
    const key = this.localKey;
    if (this.player && this.playerKey === key) return this.player;
    this.player = new Player({
      client,
      key: this.key,
      deviceId: this.id,
      durationSec: this.title.duration,
      localPositionSec: this.locals.get(key) ?? null,
      onLog: (entry) => this.log(entry),
      onConflict: (entry) => this.showConflict(entry),
    });
    this.playerKey = key;
    if (this.offline) this.player.offline();
    return this.player;
  }

  /** The viewer changed title, account or profile: leave the current one. */
  leave() {
    if (this.player && (this.state === 'playing' || this.state === 'paused')) {
      this.freeze();
      this.player.stop(this.position);
    }
    this.hidePrompt();
    this.player = null;
    this.playerKey = null;
    this.inBackground = false;
    this.setState('stopped');
    this.syncBackgroundButton();
  }

  changeTitle() {
    this.leave();
    this.titleId = $(`title-${this.id}`).value;
    this.showTitle();
  }

  showTitle() {
    this.position = this.locals.get(this.localKey) ?? 0;
    $(`duration-${this.id}`).textContent = clock(this.title.duration);
    this.render();
  }

  async onPlay() {
    if (this.state === 'playing' || this.state === 'starting' || this.state === 'prompt') return;
    const player = this.ensurePlayer();
    this.setState('starting');
    let start = player.positionSec ?? 0;
    if (this.offline) {
      this.note('resume', `offline: playing from this device's position ${clock(start)}`);
    } else {
      try {
        await player.idle(); // our own last checkpoint first
        const d = await player.resume();
        if (this.state !== 'starting' || this.player !== player) return; // the viewer moved on
        this.note(
          'resume',
          `${d.action} at ${clock(d.position)} (${d.reason}${d.deviceId ? `, from ${deviceLabel(d.deviceId)}` : ''}` +
            `${d.alternative !== null ? `; here ${clock(d.alternative)}` : ''})`,
        );
        if (d.action === 'prompt') {
          this.showPrompt({ mode: 'resume', decision: d });
          return;
        }
        start = d.position;
      } catch (e) {
        if (this.state !== 'starting' || this.player !== player) return;
        this.note('failed', `resume failed (${e.code ?? 'error'}): ${e.message}; playing from this device's position`);
      }
    }
    this.startAt(start);
  }

  /** Starts playing at `pos`; a jump away from where this device was is a seek. */
  startAt(pos) {
    const player = this.ensurePlayer();
    const known = player.positionSec;
    this.moveTo(pos);
    this.setState('playing');
    if (known !== null && Math.abs(known - this.position) >= 1) player.seek(this.position);
    player.play(this.position);
    this.render();
    refreshSoon();
  }

  onPause() {
    if (this.state === 'starting' || this.state === 'prompt') {
      this.hidePrompt();
      this.setState(this.player?.positionSec != null ? 'paused' : 'stopped');
      return;
    }
    if (this.state !== 'playing') return;
    this.freeze();
    this.locals.set(this.localKey, this.position);
    this.setState('paused');
    this.player.pause(this.position);
    refreshSoon();
  }

  onSeek(by) {
    const player = this.ensurePlayer();
    this.freeze();
    this.moveTo(this.position + by);
    player.seek(this.position);
    refreshSoon();
  }

  onStop() {
    if (this.state === 'prompt' || this.state === 'starting') this.hidePrompt();
    if (this.player && (this.state === 'playing' || this.state === 'paused')) {
      this.freeze();
      this.locals.set(this.localKey, this.position);
      this.player.stop(this.position);
    }
    this.inBackground = false;
    this.syncBackgroundButton();
    this.setState('stopped');
    refreshSoon();
  }

  onBackground() {
    const player = this.ensurePlayer();
    if (!this.inBackground) {
      this.freeze();
      this.inBackground = true;
      player.background(this.position);
    } else {
      this.inBackground = false;
      this.baseWall = performance.now();
      player.foreground();
    }
    this.syncBackgroundButton();
    this.setState(this.state);
    refreshSoon();
  }

  syncBackgroundButton() {
    const b = $(`background-${this.id}`);
    b.textContent = this.inBackground ? 'Foreground' : 'Background';
    b.setAttribute('aria-pressed', String(this.inBackground));
  }

  onOffline(offline) {
    this.offline = offline;
    this.article.classList.toggle('offline', offline);
    if (!this.player) return;
    if (offline) this.player.offline();
    else this.player.online();
  }

  /** Every second: the player reports its position. */
  tick() {
    if (!this.advancing || !this.player) return;
    const pos = this.current();
    if (pos >= this.title.duration) {
      // The end: stop there, and forget the local position (a finished title starts over).
      this.position = this.title.duration;
      this.player.stop(this.position);
      this.locals.delete(this.localKey);
      this.player = null;
      this.playerKey = null;
      this.setState('stopped');
      this.position = 0;
      refreshSoon();
      return;
    }
    this.locals.set(this.localKey, pos);
    this.player.tick(pos);
  }

  render() {
    const pos = this.current();
    $(`position-${this.id}`).textContent = pos.toFixed(1);
    $(`clock-${this.id}`).textContent = clock(pos);
    $(`bar-${this.id}`).value = this.title.duration ? pos / this.title.duration : 0;
  }

  // --- prompts ------------------------------------------------------------

  showPrompt(prompt) {
    this.prompt = prompt;
    const text = $(`prompt-text-${this.id}`);
    const detail = $(`prompt-detail-${this.id}`);
    const accept = $(`prompt-accept-${this.id}`);
    if (prompt.mode === 'resume') {
      const d = prompt.decision;
      this.setState('prompt');
      text.textContent =
        d.reason === 'finished'
          ? `Finished on ${deviceLabel(d.deviceId)}. Start over from ${clock(d.position)}?`
          : `Resume from ${clock(d.position)}, watched on ${deviceLabel(d.deviceId)}?`;
      detail.textContent = `This ${deviceLabel(this.id)} was at ${clock(d.alternative)}.`;
      accept.textContent = d.reason === 'finished' ? 'Start over' : 'Resume there';
    } else {
      const r = prompt.record;
      text.textContent = `Resume from ${clock(r.position)}, watched on ${deviceLabel(r.device_id)}?`;
      detail.textContent = `The server kept ${deviceLabel(r.device_id)}'s newer position; this ${deviceLabel(this.id)} is at ${clock(this.current())}.`;
      accept.textContent = 'Jump there';
    }
    $(`prompt-${this.id}`).hidden = false;
  }

  hidePrompt() {
    this.prompt = null;
    $(`prompt-${this.id}`).hidden = true;
  }

  showConflict(entry) {
    if (!entry.record || (this.prompt && this.prompt.mode === 'resume')) return;
    if (this.player === null) return;
    this.showPrompt({ mode: 'conflict', record: entry.record });
  }

  answerPrompt(accept) {
    const prompt = this.prompt;
    if (!prompt) return;
    this.hidePrompt();
    if (prompt.mode === 'resume') {
      const d = prompt.decision;
      if (!accept) this.player.keepLocal(d.record);
      this.startAt(accept ? d.position : d.alternative);
      return;
    }
    // A conflict while playing: jump to the other device's position (a seek
    // always applies), or keep ours (the next checkpoint applies).
    if (accept) {
      this.freeze();
      this.moveTo(prompt.record.position);
      this.player.seek(this.position);
    } else {
      this.player.keepLocal(prompt.record);
      this.note('resume', `kept this device's position ${clock(this.current())}`);
    }
    refreshSoon();
  }

  // --- log ----------------------------------------------------------------

  log(entry) {
    const pos = (p) => `${clock(p)} (${Number(p).toFixed(1)} s)`;
    switch (entry.kind) {
      case 'sent':
        return this.note('sent', `${entry.event} @ ${pos(entry.position)}`);
      case 'skipped':
        if (entry.reason === 'nothing') return undefined;
        return this.note('skipped', `${entry.input}: ${entry.reason}`, `${entry.input}:${entry.reason}`);
      case 'acked': {
        const r = entry.record;
        const extra =
          entry.outcome === 'stale'
            ? r
              ? `; server keeps ${clock(r.position)} from ${deviceLabel(r.device_id)}`
              : '; the title was removed'
            : '';
        refreshSoon();
        return this.note('acked', `${entry.event} @ ${clock(entry.position)}: ${entry.outcome}${extra}`);
      }
      case 'failed':
        return this.note('failed', `${entry.event} @ ${clock(entry.position)}: ${entry.error.code}: ${entry.error.message} (dropped)`);
      case 'conflict': {
        const r = entry.record;
        return this.note(
          'conflict',
          `${entry.event} @ ${clock(entry.position)} refused: ${r ? `${deviceLabel(r.device_id)} is at ${clock(r.position)}` : entry.error.message}`,
        );
      }
      default:
        return this.note(entry.kind, JSON.stringify(entry));
    }
  }

  /** Adds a line; repeated identical skips are folded into one line with a count. */
  note(kind, text, foldKey = null) {
    const list = $(`log-${this.id}`);
    const first = list.firstElementChild;
    const time = new Date().toLocaleTimeString([], { hour12: false });
    if (foldKey && first && this.lastLogKey === foldKey) {
      const n = Number(first.dataset.count) + 1;
      first.dataset.count = String(n);
      first.querySelector('time').textContent = time;
      first.querySelector('.count').textContent = ` \u00d7${n}`;
      return;
    }
    this.lastLogKey = foldKey;
    const li = document.createElement('li');
    li.className = `log-${kind}`;
    li.dataset.kind = kind;
    li.dataset.count = '1';
    const t = document.createElement('time');
    t.textContent = time;
    const k = document.createElement('span');
    k.className = 'kind';
    k.textContent = kind;
    const msg = document.createElement('span');
    msg.className = 'msg';
    msg.textContent = text;
    const count = document.createElement('span');
    count.className = 'count';
    msg.append(count);
    li.append(t, k, msg);
    list.prepend(li);
    while (list.children.length > LOG_LIMIT) list.lastElementChild.remove();
  }
}

// --- continue watching ------------------------------------------------------

const row = $('continue-watching');
const rowStatus = $('cw-status');
let lastRow = null;
let refreshing = false;
let soon = null;

function refreshSoon() {
  clearTimeout(soon);
  soon = setTimeout(refreshRow, 150);
}

async function refreshRow() {
  if (refreshing) return;
  refreshing = true;
  const who = profile();
  try {
    const { items } = await client.continueWatching(who, 20);
    const snapshot = JSON.stringify([who, items]);
    if (snapshot !== lastRow) {
      lastRow = snapshot;
      renderRow(who, items);
    } else {
      for (const el of row.querySelectorAll('[data-updated-at]')) el.querySelector('.ago').textContent = ago(Number(el.dataset.updatedAt));
    }
    rowStatus.textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
  } catch (e) {
    rowStatus.textContent = `could not load (${e.code ?? 'error'}): ${e.message}`;
  } finally {
    refreshing = false;
  }
}

function renderRow(who, items) {
  row.replaceChildren();
  if (items.length === 0) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = `Nothing in progress for ${who.account_id} / ${who.profile_id} yet: play something on a device.`;
    row.append(li);
    return;
  }
  for (const item of items) {
    const li = document.createElement('li');
    li.className = 'card';
    li.dataset.videoId = item.video_id;
    li.dataset.updatedAt = String(item.updated_at);
    const poster = document.createElement('div');
    poster.className = 'poster';
    poster.style.background = BY_ID.get(item.video_id)?.color ?? '#555';
    poster.textContent = titleOf(item.video_id);
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = item.duration ? `${Math.min(100, (item.position / item.duration) * 100).toFixed(1)}%` : '0%';
    bar.append(fill);
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `${clock(item.position)}${item.duration ? ` / ${clock(item.duration)}` : ''} \u00b7 on ${deviceLabel(item.device_id)} \u00b7 `;
    const when = document.createElement('span');
    when.className = 'ago';
    when.textContent = ago(item.updated_at);
    meta.append(when);
    const actions = document.createElement('div');
    actions.className = 'actions';
    const hide = document.createElement('button');
    hide.type = 'button';
    hide.className = 'hide';
    hide.textContent = 'Hide';
    hide.title = 'Hide from this row; the progress is kept';
    const watched = document.createElement('button');
    watched.type = 'button';
    watched.className = 'watched';
    watched.textContent = 'Mark watched';
    watched.title = 'Finished: out of this row, and the next play starts over';
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'remove';
    remove.textContent = 'Remove';
    remove.title = 'Forget the progress';
    actions.append(hide, watched, remove);
    li.append(poster, bar, meta, actions);
    row.append(li);
  }
}

row.addEventListener('click', async (e) => {
  const button = e.target.closest('button');
  const card = e.target.closest('[data-video-id]');
  if (!button || !card) return;
  const key = { ...profile(), video_id: card.dataset.videoId };
  button.disabled = true;
  try {
    const action = ['hide', 'watched', 'remove'].find((a) => button.classList.contains(a));
    if (action === 'hide') await client.hide(key);
    else if (action === 'watched') {
      // Marked on this page: its own device id; the title's length puts the record at its end.
      const duration = BY_ID.get(key.video_id)?.duration;
      await client.markWatched({ ...key, device_id: 'web-demo', watched: true, duration });
    } else if (action === 'remove') await client.forget(key);
    const done = { hide: 'hid', watched: 'marked watched', remove: 'removed' }[action];
    rowStatus.textContent = `${done} ${titleOf(key.video_id)}`;
  } catch (err) {
    rowStatus.textContent = `could not ${button.textContent.toLowerCase()} (${err.code ?? 'error'}): ${err.message}`;
    button.disabled = false;
    return;
  }
  lastRow = null;
  await refreshRow();
});

// --- start ------------------------------------------------------------------

const devices = [new Device('tv'), new Device('phone')];

for (const id of ['account', 'profile']) {
  $(id).addEventListener('change', () => {
    for (const d of devices) {
      d.leave();
      d.showTitle();
    }
    lastRow = null;
    refreshRow();
  });
}
// A server with --auth jwt needs a bearer token for the account: pasted
// here (e.g. from `playmark token`), sent with every request.
$('token').addEventListener('change', () => {
  client.setToken($('token').value.trim() || null);
  lastRow = null;
  refreshRow();
});
$('who').addEventListener('submit', (e) => e.preventDefault());

refreshRow();
setInterval(refreshRow, 2000);
