// The playmark demo page: two simulated players (TV and Phone) on one
// profile, each wired to the SDK's Player, the profile's continue-watching
// row (grouped by series) and its history. Everything goes through
// /sdk/playmark.js.
import { PlaymarkClient, Player } from '/sdk/playmark.js';

// The page's own catalogue: playmark keeps none. The episodes of a series
// say so, and their checkpoints and marks carry `series_id` and `episode`.
const CATALOGUE = [
  { id: 'big-buck-bunny', title: 'Big Buck Bunny', duration: 596, color: '#5b8c3a' },
  { id: 'sintel', title: 'Sintel', duration: 888, color: '#8a3b2e' },
  { id: 'tears-of-steel', title: 'Tears of Steel', duration: 734, color: '#2f4f6f' },
  { id: 'elephants-dream', title: 'Elephants Dream', duration: 653, color: '#6b4a8a' },
  { id: 'cosmos-laundromat', title: 'Cosmos Laundromat', duration: 724, color: '#b07a1c' },
  { id: 'series-e1', title: 'Demo Series, episode 1', duration: 600, color: '#1f6f78', series: 'demo-series', episode: 1 },
  { id: 'series-e2', title: 'Demo Series, episode 2', duration: 620, color: '#2c5a8c', series: 'demo-series', episode: 2 },
];
const BY_ID = new Map(CATALOGUE.map((t) => [t.id, t]));
const EPISODES = new Map(CATALOGUE.filter((t) => t.series).map((t) => [`${t.series}|${t.episode}`, t]));
const DEVICE_LABELS = { tv: 'TV', phone: 'Phone' };
const TICK_MS = 1000;
const LOG_LIMIT = 150;
const HISTORY_PAGE = 5;

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
/** The catalogue's title for episode `n` of a series, if the page has it. */
const episodeOf = (seriesId, n) => EPISODES.get(`${seriesId}|${n}`) ?? null;
/** What a title and its series fields are sent as (`series_id` and `episode` only for an episode). */
const seriesFields = (title) => (title?.series ? { series_id: title.series, episode: title.episode } : {});

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
      seriesId: this.title.series ?? null,
      episode: this.title.episode ?? null,
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
  soon = setTimeout(refreshLibrary, 150);
}

/** The row and the first page of history, from scratch. */
function reloadLibrary() {
  lastRow = null;
  refreshRow();
  reloadHistory();
}

function refreshLibrary() {
  refreshRow();
  refreshHistory();
}

// Grouped by series: a series is one item, its episode in progress (a
// record) or, once its latest episode is finished, what is next up.
async function refreshRow() {
  if (refreshing) return;
  refreshing = true;
  const who = profile();
  try {
    const { items } = await client.continueWatching(who, 20, { group: 'series' });
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
  for (const item of items) row.append('next_episode' in item ? nextUpCard(item) : titleCard(item));
}

function actionButton(className, text, title) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = text;
  b.title = title;
  return b;
}

/** A title to resume: a standalone title, or a series' episode in progress. */
function titleCard(item) {
  const li = document.createElement('li');
  li.className = 'card';
  li.dataset.videoId = item.video_id;
  li.dataset.updatedAt = String(item.updated_at);
  if (item.series_id !== undefined) {
    li.dataset.seriesId = item.series_id;
    li.dataset.episode = String(item.episode);
  }
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
  actions.append(
    actionButton('hide', 'Hide', 'Hide from this row; the progress is kept'),
    actionButton('watched', 'Mark watched', 'Finished: out of this row, into history, and the next play starts over'),
    actionButton('remove', 'Remove', 'Forget the progress'),
  );
  li.append(poster, bar, meta, actions);
  return li;
}

/**
 * A series whose latest episode is finished: "Next up: episode N", shown
 * as the catalogue's title for it when the page has one, with a play
 * action per device.
 */
function nextUpCard(item) {
  const next = episodeOf(item.series_id, item.next_episode);
  const after = item.after;
  const li = document.createElement('li');
  li.className = 'card next-up';
  li.dataset.seriesId = item.series_id;
  li.dataset.nextEpisode = String(item.next_episode);
  li.dataset.afterVideoId = after.video_id;
  li.dataset.updatedAt = String(after.updated_at);
  if (next) li.dataset.nextVideoId = next.id;
  const poster = document.createElement('div');
  poster.className = 'poster';
  poster.style.background = next?.color ?? '#555';
  poster.textContent = next ? next.title : `${item.series_id}, episode ${item.next_episode}`;
  const label = document.createElement('div');
  label.className = 'next-label';
  label.textContent = `Next up: episode ${item.next_episode}`;
  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.textContent = `after ${titleOf(after.video_id)}, finished on ${deviceLabel(after.device_id)} \u00b7 `;
  const when = document.createElement('span');
  when.className = 'ago';
  when.textContent = ago(after.updated_at);
  meta.append(when);
  const actions = document.createElement('div');
  actions.className = 'actions';
  if (next) {
    for (const device of ['tv', 'phone']) {
      const play = actionButton('play-next', `Play on ${deviceLabel(device)}`, `Play ${next.title} on the ${deviceLabel(device)}`);
      play.dataset.device = device;
      actions.append(play);
    }
  } else {
    const missing = document.createElement('span');
    missing.className = 'hint';
    missing.textContent = 'not in this catalogue';
    actions.append(missing);
  }
  actions.append(actionButton('hide', 'Hide', `Hide the series: hides ${titleOf(after.video_id)}, until an episode is played again`));
  li.append(poster, label, meta, actions);
  return li;
}

/** Selects `videoId` on a device and presses Play there. */
function playOn(deviceId, videoId) {
  const device = devices.find((d) => d.id === deviceId);
  const select = $(`title-${deviceId}`);
  if (select.value !== videoId) {
    select.value = videoId;
    device.changeTitle();
  }
  device.onPlay();
}

row.addEventListener('click', async (e) => {
  const button = e.target.closest('button');
  const card = e.target.closest('li.card');
  if (!button || !card) return;
  if (button.classList.contains('play-next')) {
    playOn(button.dataset.device, card.dataset.nextVideoId);
    rowStatus.textContent = `playing ${titleOf(card.dataset.nextVideoId)} on ${deviceLabel(button.dataset.device)}`;
    return;
  }
  // A next-up card's Hide hides the finished episode, which dismisses the series.
  const key = { ...profile(), video_id: card.dataset.videoId ?? card.dataset.afterVideoId };
  button.disabled = true;
  try {
    const action = ['hide', 'watched', 'remove'].find((a) => button.classList.contains(a));
    if (action === 'hide') await client.hide(key);
    else if (action === 'watched') {
      // Marked on this page: its own device id; the title's length puts the
      // record at its end, and an episode says which.
      const title = BY_ID.get(key.video_id);
      await client.markWatched({ ...key, device_id: 'web-demo', watched: true, duration: title?.duration, ...seriesFields(title) });
    } else if (action === 'remove') await client.forget(key);
    const done = { hide: 'hid', watched: 'marked watched', remove: 'removed' }[action];
    rowStatus.textContent = `${done} ${titleOf(key.video_id)}`;
  } catch (err) {
    rowStatus.textContent = `could not ${button.textContent.toLowerCase()} (${err.code ?? 'error'}): ${err.message}`;
    button.disabled = false;
    return;
  }
  lastRow = null;
  await Promise.all([refreshRow(), reloadHistory()]);
});

// --- history ----------------------------------------------------------------

// The profile's finished titles, newest finish first, a page at a time.
// Every refresh reads the first page again; when it changed (a title was
// finished), the list starts over from it, otherwise the pages the viewer
// added with "More" stay.
const historyList = $('history');
const historyStatus = $('history-status');
const historyMore = $('history-more');
let lastHistory = null;
let historyCursor = null;
let historyTask = null; // the history request in flight, if any

/** Runs `load` after the history request in flight (one at a time, so pages never interleave). */
function historyRun(load) {
  const task = (historyTask ?? Promise.resolve()).then(load).finally(() => {
    if (historyTask === task) historyTask = null;
  });
  historyTask = task;
  return task;
}

/** The periodic refresh: skipped while a request is in flight. */
function refreshHistory() {
  return historyTask ?? historyRun(loadHistory);
}

/** From the first page again, after what is in flight (something changed). */
function reloadHistory() {
  return historyRun(() => {
    lastHistory = null;
    return loadHistory();
  });
}

async function loadHistory() {
  const who = profile();
  try {
    const page = await client.history(who, { limit: HISTORY_PAGE });
    const snapshot = JSON.stringify([who, page]);
    if (snapshot !== lastHistory) {
      lastHistory = snapshot;
      historyList.replaceChildren();
      appendHistory(who, page);
    } else {
      for (const el of historyList.querySelectorAll('[data-finished-at]')) el.querySelector('.ago').textContent = ago(Number(el.dataset.finishedAt));
    }
    historyStatus.textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
  } catch (e) {
    historyStatus.textContent = `could not load (${e.code ?? 'error'}): ${e.message}`;
  }
}

function moreHistory() {
  historyMore.disabled = true;
  return historyRun(async () => {
    const who = profile();
    try {
      if (historyCursor !== null) appendHistory(who, await client.history(who, { limit: HISTORY_PAGE, cursor: historyCursor }));
    } catch (e) {
      historyStatus.textContent = `could not load more (${e.code ?? 'error'}): ${e.message}`;
    } finally {
      historyMore.disabled = false;
    }
  });
}

function appendHistory(who, page) {
  if (page.items.length === 0 && historyList.children.length === 0) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = `Nothing finished for ${who.account_id} / ${who.profile_id} yet: play a title to the end, or mark it watched.`;
    historyList.append(li);
  }
  for (const item of page.items) {
    const li = document.createElement('li');
    li.className = 'history-item';
    li.dataset.videoId = item.video_id;
    li.dataset.finishedAt = String(item.finished_at);
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = BY_ID.get(item.video_id)?.color ?? '#555';
    const name = document.createElement('span');
    name.className = 'title';
    name.textContent = titleOf(item.video_id);
    const meta = document.createElement('span');
    meta.className = 'meta';
    const series = item.series_id !== undefined ? `episode ${item.episode} of ${item.series_id} \u00b7 ` : '';
    meta.textContent = `${series}last on ${deviceLabel(item.device_id)} \u00b7 finished `;
    const when = document.createElement('span');
    when.className = 'ago';
    when.textContent = ago(item.finished_at);
    meta.append(when);
    li.append(swatch, name, meta);
    historyList.append(li);
  }
  historyCursor = page.next_cursor ?? null;
  historyMore.hidden = historyCursor === null;
}

historyMore.addEventListener('click', () => moreHistory());

// --- start ------------------------------------------------------------------

const devices = [new Device('tv'), new Device('phone')];

for (const id of ['account', 'profile']) {
  $(id).addEventListener('change', () => {
    for (const d of devices) {
      d.leave();
      d.showTitle();
    }
    reloadLibrary();
  });
}
// A server with --auth jwt needs a bearer token for the account: pasted
// here (e.g. from `playmark token`), sent with every request.
$('token').addEventListener('change', () => {
  client.setToken($('token').value.trim() || null);
  reloadLibrary();
});
$('who').addEventListener('submit', (e) => e.preventDefault());

refreshLibrary();
setInterval(refreshLibrary, 2000);
